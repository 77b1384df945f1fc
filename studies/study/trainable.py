"""One Ray Tune trial: one configuration of one arm on one task, trained over the study's
seeds as one population (not one Ray trial per seed)."""

from __future__ import annotations

import json
import math
import socket
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from studies.engine import TrainResult, train
from studies.study.search import TRIAL_NUMBER
from studies.study.spec import StudySpec

RESULT_FILE = "result.json"


def trial_metrics(result: TrainResult) -> dict[str, Any]:
    """What a trial reports: the summary over its seeds (DESIGN.md's metric names), with
    non-finite values as None and the members' statuses counted."""
    metrics: dict[str, Any] = {}
    for key, value in result.summary().items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        metrics[key] = value
    for status in ("converged", "max_epochs", "diverged", "stalled"):
        metrics[f"members_{status}"] = result.status.count(status)
    return metrics


def run_trial(config: dict[str, Any], *, spec_json: str, task_label: str, arm_name: str) -> None:
    """Ray Tune's function trainable: ``config`` holds the sampled hyperparameters and the
    trial's Optuna number. Reports the metrics at the top level (for Ray's schedulers and
    progress) and once more under ``summary`` (what the ledger stores with the trial)."""
    spec = StudySpec.model_validate_json(spec_json)
    task = next(t for t in spec.tasks if t.name == task_label)
    arm = next(a for a in spec.arms if a.name == arm_name)
    hyperparameters = {k: v for k, v in config.items() if k != TRIAL_NUMBER}
    torch.set_num_threads(max(1, int(spec.resources.cpus)))  # one thread per CPU Ray gave us
    device = "cuda" if spec.resources.gpus > 0 else "cpu"
    result = train(spec.train_config(task, arm, hyperparameters), device=device,
                   history_points=200)
    metrics = trial_metrics(result)
    metrics["node"] = socket.gethostname() + ":" + ray.get_runtime_context().get_node_id()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / RESULT_FILE).write_text(json.dumps(result.to_json()))
        tune.report({**metrics, "summary": metrics},
                    checkpoint=tune.Checkpoint.from_directory(folder))
