"""The comparison table a study prints at its end: per task, per arm the best configuration
found, its success rate and its epochs to target."""

from __future__ import annotations

from typing import Any

from studies.study.runner import ArmResult
from studies.text_table import text_table


def _cell(value: Any, form: str) -> str:
    return "-" if value is None else format(value, form)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={_cell(value, '.3g') if isinstance(value, float) else value}"
                    for key, value in sorted(params.items())) or "(fixed)"


def comparison_table(outcomes: list[ArmResult]) -> str:
    """One block per task; rows sorted best first by success rate, then median epochs."""
    blocks = []
    for task in dict.fromkeys(outcome.task for outcome in outcomes):
        rows = [("arm", "trials", "success", "epochs median", "epochs p90", "best configuration")]
        ranked = sorted((o for o in outcomes if o.task == task), key=_rank)
        for outcome in ranked:
            metrics = outcome.best["metrics"] if outcome.best else {}
            rows.append((
                outcome.arm, str(len(outcome.trials)),
                _cell(metrics.get("success_rate"), ".0%"),
                _cell(metrics.get("epochs_to_target_median"), ".0f"),
                _cell(metrics.get("epochs_to_target_p90"), ".0f"),
                _params(outcome.best["params"]) if outcome.best else "-"))
        blocks.append(f"{task}\n" + text_table(rows, left=(0, 5)))
    return "\n\n".join(blocks)


def _rank(outcome: ArmResult) -> tuple[float, float]:
    metrics = outcome.best["metrics"] if outcome.best else {}
    success = metrics.get("success_rate") or 0.0
    epochs = metrics.get("epochs_to_target_median")
    return (-float(success), float(epochs) if epochs is not None else float("inf"))
