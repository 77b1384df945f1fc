"""A trial's plots, drawn from its saved files (``history.npz``, ``weights.npz``,
``result.json``) so they can be drawn in the driver after the trial has ended: loss curves
over seeds, the optimizer-state telemetry, for 2-input tasks the decision boundary of the
best member (the lecture's geometric view), for 2-dimensional function tasks the
trajectories over the contour plot of F."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from studies import tasks
from studies.engine.build import build_model
from studies.engine.config import TrainConfig
from studies.study.trial_files import (
    HISTORY_FILE,
    RESULT_FILE,
    TELEMETRY_PREFIX,
    WEIGHTS_FILE,
)

DRAWN_SEEDS = 100
"""Loss curves of at most this many seeds are drawn (evenly chosen), with the median."""
_GRID = 200


def render(folder: Path, into: Path) -> list[Path]:
    """Draw every plot that fits the trial saved in ``folder``; PNG files in ``into``."""
    record = json.loads((folder / RESULT_FILE).read_text())
    config = TrainConfig.model_validate(record["config"])
    into.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with np.load(folder / HISTORY_FILE) as history:
        saved = {name: history[name] for name in history.files}
    members = record["members"]
    if saved["loss"].size:
        written.append(_save(_loss_curves(saved, members, config), into / "loss_curves.png"))
    telemetry = {name.removeprefix(TELEMETRY_PREFIX): values for name, values in saved.items()
                 if name.startswith(TELEMETRY_PREFIX)}
    if telemetry:
        written.append(_save(_telemetry(saved["epochs"], telemetry, config.optimizer.name),
                             into / "optimizer_state.png"))
    task = tasks.get(config.task)
    best = _best_member(members)
    if isinstance(task, tasks.Dataset) and task.inputs.shape[1] == 2 and \
            (folder / WEIGHTS_FILE).exists() and best is not None:
        with np.load(folder / WEIGHTS_FILE) as weights:
            final = weights["final"][best]
        figure = _decision_boundary(config, task, final, members[best])
        written.append(_save(figure, into / "decision_boundary.png"))
    if isinstance(task, tasks.FunctionTask) and task.dimension == 2 and "trajectory" in saved:
        figure = _trajectory(task, saved["trajectory"], members)
        written.append(_save(figure, into / "trajectory.png"))
    return written


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=90)  # Figure without pyplot: no display, no global state
    return path


def _best_member(members: list[dict[str, Any]]) -> int | None:
    """The converged member with the fewest epochs, else the one with the lowest loss."""
    def key(index: int) -> tuple[int, float, float]:
        member = members[index]
        loss = member["final_loss"]
        return (member["status"] != "converged", member["epochs"],
                loss if loss is not None else np.inf)
    return min(range(len(members)), key=key) if members else None


def _loss_curves(saved: dict[str, np.ndarray], members: list[dict[str, Any]],
                 config: TrainConfig) -> Figure:
    epochs, loss = saved["epochs"], saved["loss"]
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    drawn = np.unique(np.linspace(0, loss.shape[1] - 1, min(DRAWN_SEEDS, loss.shape[1]))
                      .round().astype(int))
    colours = {"converged": "tab:blue", "max_epochs": "tab:orange", "diverged": "tab:red",
               "stalled": "tab:purple"}
    for column in drawn:
        status = members[column]["status"]
        axes.plot(epochs, loss[:, column], lw=0.6, alpha=0.5, color=colours.get(status, "grey"))
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(np.isfinite(loss), loss, np.nan), axis=1)
    axes.plot(epochs, median, lw=2.2, color="black", label="median over seeds")
    target = config.stop.target
    if target is not None and target.quantity == config.loss:
        axes.axhline(target.below, ls="--", color="green", label=f"target {target.below:g}")
    for status, colour in colours.items():
        count = sum(member["status"] == status for member in members)
        if count:
            axes.plot([], [], color=colour, label=f"{status} ({count})")
    if np.nanmin(np.where(loss > 0, loss, np.nan), initial=np.inf) < np.inf:
        axes.set_yscale("log")
    axes.set(xlabel="epoch", ylabel=f"training loss ({config.loss})",
             title=f"{config.task}: {_optimizer_text(config)}, {loss.shape[1]} seeds")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _optimizer_text(config: TrainConfig) -> str:
    options = config.optimizer.model_dump(exclude={"name"}, exclude_none=True)
    shown = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                      for key, value in list(options.items())[:4])
    return f"{config.optimizer.name}({shown})"


def _telemetry(epochs: np.ndarray, series: dict[str, np.ndarray], optimizer: str) -> Figure:
    quantiles = sorted(name for name in series if "_p" in name and name.rsplit("_p", 1)[1]
                       .isdigit())
    rates = sorted(name for name in series if name not in quantiles)
    figure = Figure(figsize=(10 if rates else 6, 3.8))
    panels = figure.subplots(1, 2 if rates else 1, squeeze=False)
    left = panels[0][0]
    if quantiles:
        base = quantiles[0].rsplit("_p", 1)[0]
        low, middle, high = (series[name] for name in quantiles)
        left.fill_between(epochs, low, high, alpha=0.25, label="10–90% of weights")
        left.plot(epochs, middle, lw=1.8, label="median")
        left.set_yscale("log")
        left.set(xlabel="epoch", ylabel=base.replace("_", " "), title=f"{optimizer}: {base}")
        left.legend(fontsize=8)
    if rates:
        right = panels[0][1]
        for name in rates:
            right.plot(epochs, series[name], lw=1.4, label=name.replace("_", " "))
        right.set(xlabel="epoch", ylabel="fraction of weights", ylim=(-0.02, 1.02))
        right.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _decision_boundary(config: TrainConfig, task: tasks.Dataset, final: np.ndarray,
                       member: dict[str, Any]) -> Figure:
    inputs = task.inputs.double().numpy()
    targets = task.targets.double().numpy()[:, 0]
    low, high = inputs.min(axis=0), inputs.max(axis=0)
    margin = 0.25 * np.maximum(high - low, 1e-9)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], _GRID)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], _GRID)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = torch.tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1),
                          dtype=config.torch_dtype)
    model = build_model(config, task, torch.tensor([member["seed"]]), torch.device("cpu"))
    with torch.no_grad():
        model.flat.data = torch.tensor(final, dtype=config.torch_dtype).unsqueeze(0)
        output = model(points)[0, :, 0].double().numpy().reshape(grid_x.shape)
    threshold = 0.5 * (targets.min() + targets.max())
    figure = Figure(figsize=(5.2, 4.6))
    axes = figure.subplots()
    shade = axes.contourf(grid_x, grid_y, output, levels=20, cmap="RdBu_r", alpha=0.75)
    axes.contour(grid_x, grid_y, output, levels=[threshold], colors="black", linewidths=2)
    figure.colorbar(shade, ax=axes, label="network output")
    positive = targets > threshold
    axes.scatter(inputs[positive, 0], inputs[positive, 1], marker="o", s=40, c="white",
                 edgecolors="black", label="target 1")
    axes.scatter(inputs[~positive, 0], inputs[~positive, 1], marker="x", s=40, c="black",
                 label="target 0")
    axes.set(xlabel="x₁", ylabel="x₂", title=f"{config.task}: decision boundary of seed "
             f"{member['seed']}\n({member['status']}, {member['epochs']} epochs)")
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure


def _trajectory(task: tasks.FunctionTask, trajectory: np.ndarray,
                members: list[dict[str, Any]]) -> Figure:
    """``trajectory`` is [records, members, 2]: the first members' points over epochs."""
    minimiser = np.asarray(task.minimiser, dtype=float)
    everything = np.concatenate([trajectory.reshape(-1, 2), minimiser[None]])
    everything = everything[np.isfinite(everything).all(axis=1)]
    low, high = everything.min(axis=0), everything.max(axis=0)
    margin = 0.15 * np.maximum(high - low, 1e-3)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], _GRID)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], _GRID)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = torch.tensor(np.stack([grid_x, grid_y], axis=-1), dtype=torch.float64)
    gap = task.objective(points).numpy() - task.minimum
    figure = Figure(figsize=(5.6, 4.6))
    axes = figure.subplots()
    shade = axes.contourf(grid_x, grid_y, np.log10(gap + 1e-12), levels=25, cmap="viridis")
    figure.colorbar(shade, ax=axes, label="log₁₀(F(x) − F*)")
    for column in range(min(trajectory.shape[1], 8)):
        path = trajectory[:, column]
        axes.plot(path[:, 0], path[:, 1], "-", lw=1.2, color="white", alpha=0.9)
        axes.plot(path[0, 0], path[0, 1], "o", color="white", ms=4)
        axes.plot(path[-1, 0], path[-1, 1], "s", color="orange", ms=4)
    axes.plot(*minimiser, "*", color="red", ms=12, label="minimiser")
    axes.set(xlabel="x₁", ylabel="x₂",
             title=f"{task.name}: trajectories of {min(trajectory.shape[1], 8)} seeds")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
