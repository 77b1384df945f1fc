"""``optistudy study report NAME``: each arm's best configuration re-run on fresh seeds shared
by all arms (not the tuning seeds, so the selection does not flatter the winner), compared
with intervals and paired tests, written as Markdown and HTML and logged to MLflow."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from studies.engine import train
from studies.report import ArmOutcome, compare_arms, performance_profile
from studies.study import report_plots
from studies.study.document import Block, Bullets, Document, Heading, Image, Paragraph, Table
from studies.study.home import Home
from studies.study.ledger import experiment_name, load
from studies.study.recording import tracking_client
from studies.study.runner import best_trial
from studies.study.spec import StudySpec, TaskSpec

TAUS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def fresh_seeds(spec: StudySpec, count: int) -> list[int]:
    """Seeds no trial was tuned on: the ones after the study's tuning seeds."""
    start = spec.seed_start + spec.seeds_per_trial
    return list(range(start, start + count))


def _target_text(task: TaskSpec) -> str:
    target = task.stop.target
    if target is None:
        return "its stop rule"
    names = {"sse": "SSE", "half_sse": "½SSE", "mse": "MSE", "error_rate": "error rate",
             "loss": "loss", "gap": "F(x) − F*"}
    return f"{names[target.quantity]} < {target.below:g}"


def _task_section(spec: StudySpec, task: TaskSpec, home: Home, seeds: list[int],
                  figures: Path, progress: Callable[[str], None]) -> list[Block]:
    outcomes: dict[str, ArmOutcome] = {}
    chosen: dict[str, dict[str, object]] = {}
    for arm in spec.arms:
        best = best_trial(spec, home, experiment_name(spec, task, arm))
        if best is None:
            progress(f"  {task.name}/{arm.name}: no finished trial, left out")
            continue
        config = spec.train_config(task, arm, best["params"])
        result = train(config.model_copy(update={"seeds": seeds}), history_points=0)
        chosen[arm.name] = best["params"]
        outcomes[arm.name] = ArmOutcome(
            converged=[status == "converged" for status in result.status],
            epochs=result.epochs, max_epochs=config.stop.max_epochs,
            times=result.time_to_target_s)
        progress(f"  {task.name}/{arm.name}: re-run on {len(seeds)} fresh seeds")
    heading = Heading(2, f"{task.name}: {_target_text(task)}")
    if not outcomes:
        return [heading, Paragraph("No arm has a finished trial yet.")]
    comparison = compare_arms(task.name, outcomes, _target_text(task))
    rows = [[summary.name, f"{summary.successes}/{summary.seeds}",
             _interval(summary.success, ".0%"), _number(summary.epochs.estimate),
             _interval(summary.epochs, ".0f"), _configuration(chosen[summary.name])]
            for summary in comparison.arms]
    profile = performance_profile(outcomes, TAUS)
    blocks: list[Block] = [
        heading,
        Table(["arm", "success", "95% CI", "epochs median", "95% CI", "best configuration"],
              rows),
        Bullets(comparison.sentences()),
        Paragraph("Performance profile (fraction of seeds an arm solves within τ × the best "
                  "arm's epochs on that seed):"),
        Table(["arm", *[f"τ={tau:g}" for tau in TAUS]],
              [[name, *[f"{v:.0%}" for v in values]] for name, values in profile.items()]),
        Image(report_plots.profile_plot(task.name, outcomes,
                                        figures / f"{task.name}-profile.png"),
              f"{task.name}: performance profile on the fresh seeds"),
        Image(report_plots.epochs_plot(task.name, outcomes, figures / f"{task.name}-epochs.png"),
              f"{task.name}: epochs to target per fresh seed"),
    ]
    for arm in spec.arms:
        study = optuna.load_study(study_name=experiment_name(spec, task, arm),
                                  storage=home.optuna_storage)
        for path, caption in report_plots.optuna_plots(study, figures, f"{task.name}-{arm.name}"):
            blocks.append(Image(path, caption))
    return blocks


def _configuration(params: dict[str, object]) -> str:
    return ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in sorted(params.items())) or "(fixed)"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _interval(interval: object, form: str) -> str:
    low, high = getattr(interval, "low", None), getattr(interval, "high", None)
    if low is None or high is None:
        return "-"
    return f"{format(low, form)}–{format(high, form)}"


def build(home: Home, name: str, *, seeds: int = 64,
          progress: Callable[[str], None] = print) -> Path:
    """Write ``report.md`` (figures in ``report/``) and a self-contained ``report.html`` in
    the study's folder, and log them to MLflow."""
    spec = load(home, name)
    fresh = fresh_seeds(spec, seeds)
    folder = home.study_dir(name)
    figures = folder / "report"
    if figures.exists():
        shutil.rmtree(figures)
    figures.mkdir(parents=True)
    document = Document(f"Study {name}")
    if spec.description:
        document.add(Paragraph(spec.description))
    document.add(Paragraph(
        f"Each arm's best configuration (by the study's objective, {spec.objective.goal}) "
        f"re-run on {seeds} fresh seeds ({fresh[0]}..{fresh[-1]}) shared by every arm; "
        "intervals are 95%, tests paired on seeds and Holm-corrected per task."))
    for task in spec.tasks:
        document.add(*_task_section(spec, task, home, fresh, figures, progress))
    (folder / "report.md").write_text(document.markdown(folder))
    (folder / "report.html").write_text(document.html())
    _log(home, name, folder)
    return folder / "report.md"


def _log(home: Home, name: str, folder: Path) -> None:
    client = tracking_client(home)
    experiment = client.get_experiment_by_name(f"optistudy/{name}")
    if experiment is None:
        experiment_id = client.create_experiment(
            f"optistudy/{name}", artifact_location=(home.root / "mlartifacts").as_uri())
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=f"report {time.strftime('%Y-%m-%d %H:%M')}",
                            tags={"optistudy.study": name, "optistudy.role": "report"})
    for file in ("report.md", "report.html"):
        client.log_artifact(run.info.run_id, str(folder / file))
    client.log_artifacts(run.info.run_id, str(folder / "report"), "report")
    client.set_terminated(run.info.run_id, "FINISHED")
