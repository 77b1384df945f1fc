"""One Ray Tune trial: a batch of configurations (Optuna trials) of one arm on one task,
trained over the study's seeds as one population (not one Ray trial per seed, nor per
configuration), in checkpointed segments; each configuration is reported on its own."""

from __future__ import annotations

import hashlib
import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from studies.engine import Training, TrainResult
from studies.study import batching, trial_files
from studies.study.search import REPORTED, batch_of
from studies.study.spec import StudySpec

STATE_FILE = "training.pt"
SEGMENTS = 10
"""A trial reports this many times over its max_epochs (with a checkpoint where one is due,
``SAVE_SECONDS``)."""
CHUNKS = 8
SAVE_SECONDS = 1.0
"""A trial trains in CHUNKS steps between two reports and saves a checkpoint after a step when
this long has passed since the last save (its own file; at a report, Ray's too): a killed
driver or worker loses at most about this much of the trial's training (a few ms per save)."""


def trial_metrics(result: TrainResult) -> dict[str, Any]:
    """What a finished trial reports: the summary over its seeds (DESIGN.md's metric names),
    with non-finite values as None and the members' statuses counted."""
    metrics: dict[str, Any] = {}
    for key, value in result.summary().items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        metrics[key] = value
    for status in ("converged", "max_epochs", "diverged", "stalled"):
        metrics[f"members_{status}"] = result.status.count(status)
    return metrics


def _save(state: dict[str, Any], path: Path) -> None:
    """Write atomically: a trial killed while saving leaves the previous checkpoint; a
    temporary file of the process's own, so that a worker of a dead driver still finishing
    the same trial cannot interleave its writes with those of the trial resumed elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def _saved_state(own: Path) -> dict[str, Any] | None:
    """The latest checkpoint: Ray's (a retried trial) or the trial's own (saved more often,
    and what a trial resumed by a new driver after the old one died finds), whichever is
    further on."""
    states: list[dict[str, Any]] = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            path = Path(folder) / STATE_FILE
            if path.exists():
                states.append(torch.load(path, weights_only=True))
    if own.exists():
        states.append(torch.load(own, weights_only=True))
    return max(states, key=lambda state: int(state["epoch"]), default=None)


def run_trial(config: dict[str, Any], *, spec_json: str, task_label: str, arm_name: str,
              checkpoints: str, save_seconds: float = SAVE_SECONDS) -> None:
    """Ray Tune's function trainable: ``config`` holds the batch of Optuna trials (numbers
    and sampled hyperparameters). Every segment reports interim metrics of the whole
    population (for ASHA, which runs batches of one), with Ray's checkpoint where a save is
    due; the end reports each
    trial's metrics under ``trials/NUMBER`` (what the ledger stores with each Optuna trial)
    and its files in a folder per number. A checkpoint is saved after a step when
    ``save_seconds`` have passed since the last save."""
    spec = StudySpec.model_validate_json(spec_json)
    task = next(t for t in spec.tasks if t.name == task_label)
    arm = next(a for a in spec.arms if a.name == arm_name)
    batch = batch_of(config)
    torch.set_num_threads(max(1, int(spec.resources.cpus)))  # one thread per CPU Ray gave us
    device = "cuda" if spec.resources.gpus > 0 else "cpu"
    configs = [spec.train_config(task, arm, params) for _, params in batch]
    train_config, seeds, per_member = batching.population(configs)
    training = Training(train_config, seeds=seeds, per_member=per_member, device=device,
                        history_points=200, groups=len(batch))
    numbers = ",".join(str(number) for number, _ in batch)
    own = Path(checkpoints) / f"{hashlib.sha256(numbers.encode()).hexdigest()[:16]}.pt"
    state = _saved_state(own)
    if state is not None:
        training.load_state_dict(state)
    resumed_at = training.epoch
    segment = max(1, math.ceil((train_config.stop.max_epochs + 1) / SEGMENTS))
    chunk = max(1, segment // CHUNKS)
    report_at, saved = training.epoch + segment, time.monotonic()
    while not training.advance(min(chunk, report_at - training.epoch)):
        due = time.monotonic() - saved >= save_seconds
        if due:
            saved = time.monotonic()
            state = training.state_dict()
            _save(state, own)  # what a new driver resumes
        if training.epoch < report_at:
            continue
        report_at += segment
        if not due:  # a trial of a few seconds reports more often than it saves
            tune.report(training.interim_summary())
            continue
        with tempfile.TemporaryDirectory() as folder:  # what Ray retries the trial from
            torch.save(state, Path(folder) / STATE_FILE)
            tune.report(training.interim_summary(),
                        checkpoint=tune.Checkpoint.from_directory(folder))
    node = socket.gethostname() + ":" + ray.get_runtime_context().get_node_id()
    by_number: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for (number, _), result in zip(batch, training.group_results(configs), strict=True):
            metrics = trial_metrics(result)
            metrics["node"] = node
            metrics["resumed_at_epoch"] = resumed_at  # > 0: continued from a checkpoint
            metrics["batch_size"] = len(batch)  # configurations trained in this population
            by_number[str(number)] = metrics
            files = Path(folder) / str(number)
            files.mkdir()
            trial_files.write(result, files)
        tune.report({**_batch_objective(by_number), "epoch": training.epoch,
                     REPORTED: by_number},
                    checkpoint=tune.Checkpoint.from_directory(folder))
    own.unlink(missing_ok=True)


def _batch_objective(by_number: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Top-level metrics of a batch for Ray Tune's own bookkeeping (each Optuna trial is
    told its own values from ``trials/NUMBER``): the best of the batch by each."""
    best: dict[str, Any] = {}
    for name, pick in (("epochs_penalised_mean", min), ("success_rate", max)):
        values = [m[name] for m in by_number.values() if isinstance(m.get(name), int | float)]
        if values:
            best[name] = pick(values)
    return best
