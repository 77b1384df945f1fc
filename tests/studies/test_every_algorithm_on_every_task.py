"""Every algorithm trains on every task (a few seeds, a few epochs): the spec validates, the
engine runs, every member ends with a status and finite or diverged-marked numbers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from studies.engine import STATUSES, TrainConfig, train

TASKS = ["and", "or", "xor", "parity-3", "encoder-4-2-4", "spirals", "iris", "digits",
         "breast-cancer", "quadratic", "rosenbrock"]
ALGORITHMS: dict[str, dict[str, Any]] = {
    "perceptron_rule": {"name": "perceptron_rule", "lr": 0.01},
    "steepest_descent": {"name": "steepest_descent", "lr": 0.01, "momentum": 0.9},
    "Rprop+": {"name": "rprop", "variant": "Rprop+"},
    "Rprop-": {"name": "rprop", "variant": "Rprop-"},
    "iRprop+": {"name": "rprop", "variant": "iRprop+"},
    "iRprop-": {"name": "rprop", "variant": "iRprop-"},
    "GRprop-sag": {"name": "grprop", "variant": "sag"},
    "GRprop-slr-wolfe": {"name": "grprop", "variant": "slr", "line_search": "wolfe"},
    "rmsprop": {"name": "rmsprop", "lr": 0.001},
    "adam": {"name": "adam", "lr": 0.01},
}
MULTICLASS = {"iris", "digits"}


def _spec(task: str, optimizer: dict[str, Any]) -> TrainConfig:
    data: dict[str, Any] = {"task": task, "optimizer": optimizer, "seeds": 3,
                            "stop": {"max_epochs": 5}}
    if task in MULTICLASS:
        data["model"] = {"output": "linear"}
        data["loss"] = "cross_entropy"
        data["stop"]["target"] = {"quantity": "error_rate", "below": 0.01}
    elif task in ("quadratic", "rosenbrock"):
        data["stop"]["target"] = {"quantity": "gap", "below": 1e-8}
    return TrainConfig.model_validate(data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("task", TASKS)
def test_trains(task: str, algorithm: str) -> None:
    result = train(_spec(task, ALGORITHMS[algorithm]))
    assert len(result.status) == 3 and set(result.status) <= set(STATUSES)
    for member in range(3):
        if result.status[member] != "diverged":
            assert math.isfinite(result.final_loss[member])
            assert 1 <= result.epochs[member] <= 5 or result.status[member] == "converged"
    summary = result.to_json()["summary"]
    assert summary["members"] == 3
