"""The report's figures: a performance profile and the epochs to target per arm for each
task, and Optuna's own parameter-importance and slice plots for each arm's search."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from studies.report import ArmOutcome, performance_profile


def profile_plot(task: str, outcomes: dict[str, ArmOutcome], path: Path) -> Path:
    """Dolan–Moré performance profiles over the seeds: the fraction of seeds an arm solves
    within τ × the best arm's epochs on that seed, for τ from 1 to the largest ratio."""
    reached = [e for outcome in outcomes.values() for e in outcome.reached()]
    largest = max(reached) / max(1, min(reached)) if reached else 2.0
    taus = np.geomspace(1.0, max(2.0, 1.2 * largest), 200)
    profile = performance_profile(outcomes, taus.tolist())
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.subplots()
    for name, fractions in profile.items():
        axes.step(taus, fractions, where="post", lw=1.8, label=name)
    axes.set_xscale("log")
    axes.set(xlabel="τ (epochs ÷ the best arm's epochs on the same seed)",
             ylabel="fraction of seeds", ylim=(-0.02, 1.02),
             title=f"{task}: performance profile")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def epochs_plot(task: str, outcomes: dict[str, ArmOutcome], path: Path) -> Path:
    """Epochs to target of every converged seed, one column per arm (log scale), with the
    seeds that failed counted under the arm's name."""
    figure = Figure(figsize=(max(5.0, 1.1 * len(outcomes) + 2), 4.2))
    axes = figure.subplots()
    generator = np.random.default_rng(0)
    labels = []
    for position, (name, outcome) in enumerate(outcomes.items()):
        reached = np.array(outcome.reached(), dtype=float)
        jitter = generator.uniform(-0.18, 0.18, reached.size)
        axes.scatter(position + jitter, np.maximum(reached, 1), s=9, alpha=0.6)
        if reached.size:
            axes.hlines(np.median(np.maximum(reached, 1)), position - 0.3, position + 0.3,
                        color="black", lw=2)
        labels.append(f"{name}\n{reached.size}/{outcome.seeds} converged")
    axes.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30, ha="right")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes.set(ylabel="epochs to target (converged seeds)",
             title=f"{task}: epochs to target per seed (bar: median)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def optuna_plots(study: optuna.Study, folder: Path, stem: str) -> list[tuple[Path, str]]:
    """Optuna's parameter-importance and slice plots of one arm's search (where it has
    enough finished trials and searched parameters for them)."""
    import matplotlib.pyplot as plt  # Optuna draws with pyplot
    from optuna.visualization import matplotlib as optuna_matplotlib

    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    searched = {name for trial in finished for name in trial.params}
    if len(finished) < 2 or not searched:
        return []
    target = None if len(study.directions) == 1 else (lambda t: t.values[0])
    drawn: list[tuple[Path, str]] = []
    plots = (("importance", optuna_matplotlib.plot_param_importances,
              "parameter importance (fANOVA) for the objective"),
             ("slice", optuna_matplotlib.plot_slice, "objective against each searched value"))
    for kind, draw, caption in plots:
        if kind == "importance" and len(searched) < 2:
            continue  # one parameter is all of the importance
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = draw(study, target=target)
        first = np.ravel(axes)[0] if isinstance(axes, np.ndarray) else axes
        figure = first.get_figure(root=True)
        assert isinstance(figure, Figure)
        path = folder / f"{stem}-{kind}.png"
        figure.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(figure)
        drawn.append((path, f"{stem}: {caption}"))
    return drawn
