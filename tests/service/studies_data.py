"""Study specs for the service tests: XOR with one or two arms, small enough for seconds."""

from __future__ import annotations

from typing import Any


def xor_study(name: str, *, trials: int = 2, seeds: int = 4, max_epochs: int = 200,
              arms: int = 2) -> dict[str, Any]:
    chosen = [
        {"name": "iRprop-plus", "optimizer": "rprop", "fixed": {"variant": "iRprop+"},
         "search": {"delta0": {"low": 1.0e-5, "high": 1.0, "log": True}},  # JSON: 1e-05
         "defaults": [{"delta0": 0.1}]},
        {"name": "momentum", "optimizer": "steepest_descent",
         "search": {"lr": {"low": 0.05, "high": 5.0, "log": True},
                    "momentum": {"low": 0.0, "high": 0.95}}},
    ][:arms]
    return {
        "name": name,
        "tasks": [{"task": "xor", "stop": {"target": {"quantity": "sse", "below": 0.001},
                                           "max_epochs": max_epochs}}],
        "arms": chosen,
        "seeds_per_trial": seeds,
        "trials_per_arm": trials,
    }
