"""What a population training run gives back: per-member outcomes and their summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import Tensor, nn

from studies.engine.config import TrainConfig

STATUSES = ("converged", "max_epochs", "diverged", "stalled")
"""Every member ends in one of these: target met, epoch budget spent, non-finite loss or
weights, or no progress for ``stop.stall_patience`` epochs."""


@dataclass
class TrainResult:
    """Per-member outcomes of one configuration trained over its seeds (columns, one entry
    per member, in seed order) and the population's history."""

    config: TrainConfig
    seeds: list[int]
    status: list[str]
    epochs: list[int]
    """Epochs trained: for a converged member, epochs to target."""
    final_loss: list[float]
    """The training loss at the final weights."""
    final_quantity: list[float]
    """The stop rule's quantity at the last check (e.g. the epoch's SSE)."""
    time_to_target_s: list[float | None]
    initial_weights: Tensor
    """[members, n_weights] (flat, on the CPU)."""
    final_weights: Tensor
    model: nn.Module = field(repr=False)
    wall_time_s: float
    device: str
    evaluation: str
    """How the stop quantity was measured: presented, end_of_epoch or batch."""
    history_epochs: list[int] = field(default_factory=list)
    history_loss: Tensor | None = None
    """[len(history_epochs), members] training loss per member (float32, CPU)."""
    history_telemetry: dict[str, list[float]] = field(default_factory=dict)
    """Optimizer-state telemetry over the recorded epochs (``studies.engine.telemetry``)."""
    history_weights: Tensor | None = None
    """Function tasks: [len(history_epochs), members ≤ 64, n] the first members' weights."""
    train_accuracy: list[float] | None = None
    validation_accuracy: list[float] | None = None
    compactions: int = 0
    """How often the engine dropped stopped members from its tensors (an engine statistic)."""

    @property
    def members(self) -> int:
        return len(self.seeds)

    def summary(self) -> dict[str, Any]:
        """Aggregates over seeds, named as in DESIGN.md. Epochs to target are over the
        converged members (None if none); ``epochs_penalised_mean`` counts every failure at
        ``max_epochs`` (the default study objective)."""
        status = np.array(self.status)
        epochs = np.array(self.epochs, dtype=float)
        converged = status == "converged"
        reached = epochs[converged]
        max_epochs = self.config.stop.max_epochs
        times = [t for t in self.time_to_target_s if t is not None]
        summary: dict[str, Any] = {
            "members": self.members,
            "success_rate": float(converged.mean()),
            "epochs_to_target_mean": _stat(reached, np.mean),
            "epochs_to_target_median": _stat(reached, np.median),
            "epochs_to_target_p90": _stat(reached, lambda a: np.percentile(a, 90)),
            "epochs_penalised_mean": float(np.where(converged, epochs, max_epochs).mean()),
            "time_to_target_s_median": _stat(np.array(times), np.median),
            "final_loss_median": _stat(np.array(self.final_loss), np.nanmedian),
            "diverged_rate": float((status == "diverged").mean()),
            "stalled_rate": float((status == "stalled").mean()),
            "max_epochs_rate": float((status == "max_epochs").mean()),
            "model_epochs": int(epochs.sum()),
            "wall_time_s": self.wall_time_s,
        }
        if self.validation_accuracy is not None:
            summary["validation_accuracy_median"] = float(np.median(self.validation_accuracy))
        return summary

    def part(self, members: slice, *, config: TrainConfig, telemetry: dict[str, list[float]],
             trajectory: slice) -> TrainResult:
        """The members ``members`` of this result as the result of ``config`` alone (a
        population holding several configurations); ``trajectory`` selects their tracked
        weights in ``history_weights``."""
        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else values[members]

        return replace(
            self, config=config, seeds=self.seeds[members], status=self.status[members],
            epochs=self.epochs[members], final_loss=self.final_loss[members],
            final_quantity=self.final_quantity[members],
            time_to_target_s=self.time_to_target_s[members],
            initial_weights=self.initial_weights[members],
            final_weights=self.final_weights[members],
            history_loss=(None if self.history_loss is None
                          else self.history_loss[:, members].clone()),
            history_telemetry=telemetry,
            history_weights=(None if self.history_weights is None
                             else self.history_weights[:, trajectory].clone()),
            train_accuracy=pick(self.train_accuracy),
            validation_accuracy=pick(self.validation_accuracy))

    def member(self, index: int, *, weights: bool = True) -> dict[str, Any]:
        """One member's outcome, with its final weights in the ``torch.nn.Linear`` layout
        (unless ``weights`` is False)."""
        record: dict[str, Any] = {
            "seed": self.seeds[index],
            "status": self.status[index],
            "epochs": self.epochs[index],
            "final_loss": _finite_or_none(self.final_loss[index]),
            "final_quantity": _finite_or_none(self.final_quantity[index]),
            "time_to_target_s": self.time_to_target_s[index],
        }
        if weights:
            record["final_weights"] = self.model.layer_weights(  # type: ignore[operator]
                self.final_weights[index])
        if self.train_accuracy is not None:
            record["train_accuracy"] = self.train_accuracy[index]
        if self.validation_accuracy is not None:
            record["validation_accuracy"] = self.validation_accuracy[index]
        return record

    def to_json(self, *, weights: bool = True) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "device": self.device,
            "stop_evaluation": self.evaluation,
            "summary": _json_safe(self.summary()),
            "members": [self.member(i, weights=weights) for i in range(self.members)],
        }


def _stat(values: np.ndarray, reduce: Any) -> float | None:
    if values.size == 0:
        return None
    result = float(reduce(values))
    return result if math.isfinite(result) else None


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: (_finite_or_none(v) if isinstance(v, float) else v) for key, v in summary.items()}
