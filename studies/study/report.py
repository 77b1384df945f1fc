"""``optistudy study report NAME``: each arm's best configuration re-run on fresh seeds shared
by all arms (not the tuning seeds, so the selection does not flatter the winner), compared
with intervals and paired tests, written as Markdown and HTML and logged to MLflow."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from studies.engine import train
from studies.report import ArmOutcome, TaskComparison, compare_arms, performance_profile
from studies.study.home import Home
from studies.study.ledger import experiment_name, load
from studies.study.recording import tracking_uri
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
                  progress: Callable[[str], None]) -> tuple[str, TaskComparison | None]:
    outcomes: dict[str, ArmOutcome] = {}
    chosen: dict[str, dict[str, object]] = {}
    for arm in spec.arms:
        best = best_trial(spec, home, experiment_name(spec, task, arm))
        if best is None:
            progress(f"  {task.name}/{arm.name}: no finished trial, left out")
            continue
        config = spec.train_config(task, arm, best["params"])
        result = train(config.model_copy(update={"seeds": seeds}))
        chosen[arm.name] = best["params"]
        outcomes[arm.name] = ArmOutcome(
            converged=[status == "converged" for status in result.status],
            epochs=result.epochs, max_epochs=config.stop.max_epochs,
            times=result.time_to_target_s)
        progress(f"  {task.name}/{arm.name}: re-run on {len(seeds)} fresh seeds")
    if not outcomes:
        return f"## {task.name}\n\nNo arm has a finished trial yet.\n", None
    comparison = compare_arms(task.name, outcomes, _target_text(task))
    lines = [f"## {task.name}: {_target_text(task)}", "",
             "| arm | success | 95% CI | epochs median | 95% CI | best configuration |",
             "|---|---|---|---|---|---|"]
    for summary in comparison.arms:
        lines.append(
            f"| {summary.name} | {summary.successes}/{summary.seeds} | "
            f"{_interval(summary.success, '.0%')} | {_number(summary.epochs.estimate)} | "
            f"{_interval(summary.epochs, '.0f')} | {_configuration(chosen[summary.name])} |")
    lines += ["", *[f"- {sentence}" for sentence in comparison.sentences()], "",
              "Performance profile (fraction of seeds an arm solves within τ × the best "
              "arm's epochs on that seed):", "",
              "| arm | " + " | ".join(f"τ={tau:g}" for tau in TAUS) + " |",
              "|---|" + "---|" * len(TAUS)]
    for arm_name, values in performance_profile(outcomes, TAUS).items():
        lines.append(f"| {arm_name} | " + " | ".join(f"{v:.0%}" for v in values) + " |")
    return "\n".join(lines) + "\n", comparison


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
    """Write ``report.md`` and ``report.html`` in the study's folder and log both to MLflow."""
    spec = load(home, name)
    fresh = fresh_seeds(spec, seeds)
    sections = [f"# Study {name}", "", spec.description or "", "",
                f"Each arm's best configuration (by the study's objective, "
                f"{spec.objective.goal}) re-run on {seeds} fresh seeds "
                f"({fresh[0]}..{fresh[-1]}) shared by every arm; intervals are 95%, tests "
                "paired on seeds and Holm-corrected per task.", ""]
    for task in spec.tasks:
        section, _ = _task_section(spec, task, home, fresh, progress)
        sections.append(section)
    markdown = "\n".join(sections)
    folder = home.study_dir(name)
    (folder / "report.md").write_text(markdown)
    (folder / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>optistudy report</title>"
        f"<pre style='font: 14px/1.4 monospace; white-space: pre-wrap'>"
        f"{html.escape(markdown)}</pre>\n")
    _log(home, name, folder)
    return folder / "report.md"


def _log(home: Home, name: str, folder: Path) -> None:
    client = MlflowClient(tracking_uri(home))
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
    client.set_terminated(run.info.run_id, "FINISHED")
