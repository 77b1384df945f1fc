"""A finished trial's files (per-seed table, curves with telemetry, weights) and the plots
drawn from them: which plots a task gets, and that they are real images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from studies.engine import TrainConfig, Training
from studies.study import plots, trial_files

XOR_RPROP = {"task": "xor", "optimizer": {"name": "rprop", "variant": "iRprop+"}, "seeds": 8,
             "stop": {"target": {"quantity": "sse", "below": 0.001}, "max_epochs": 300}}
ROSENBROCK_ADAM = {"task": "rosenbrock", "optimizer": {"name": "adam", "lr": 0.05}, "seeds": 3,
                   "init": {"scheme": "start", "spread": 0.3},
                   "stop": {"target": {"quantity": "gap", "below": 1e-6}, "max_epochs": 200}}
PARITY_MOMENTUM = {"task": "parity-4", "model": {"type": "mlp", "layers": [4, 4, 1]},
                   "optimizer": {"name": "steepest_descent", "lr": 0.5, "momentum": 0.9},
                   "seeds": 4, "stop": {"max_epochs": 50}}


def _trial(spec: dict[str, object], folder: Path) -> Training:
    training = Training(TrainConfig.model_validate(spec), history_points=50)
    training.advance()
    trial_files.write(training.result(), folder)
    return training


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_the_files_hold_every_seed(tmp_path: Path) -> None:
    training = _trial(XOR_RPROP, tmp_path)
    result = training.result()
    with (tmp_path / trial_files.SEEDS_FILE).open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["seed"]) for row in rows] == list(range(8))
    assert [row["status"] for row in rows] == result.status
    assert [int(row["epochs"]) for row in rows] == result.epochs
    record = json.loads((tmp_path / trial_files.RESULT_FILE).read_text())
    assert record["config"]["optimizer"]["variant"] == "iRprop+"
    assert "final_weights" not in record["members"][0]  # weights.npz holds them
    with np.load(tmp_path / trial_files.WEIGHTS_FILE) as weights:
        assert np.array_equal(weights["final"], result.final_weights.numpy())
        assert np.array_equal(weights["initial"], result.initial_weights.numpy())
    with np.load(tmp_path / trial_files.HISTORY_FILE) as history:
        assert history["loss"].shape == (len(result.history_epochs), 8)
        flips = history[trial_files.TELEMETRY_PREFIX + "sign_change_rate"]
        at_max = history[trial_files.TELEMETRY_PREFIX + "step_size_frac_at_max"]
    assert np.isnan(flips[0]) and np.all((flips[1:] >= 0) & (flips[1:] <= 1))
    assert np.nanmax(flips) > 0  # Rprop's weights do change sign on XOR
    assert np.all(at_max[1:] <= 1)


def test_rprop_telemetry_reads_the_optimizer_state() -> None:
    # every epoch recorded; epoch 9's record is taken before its step, so it must describe
    # the state the first 9 steps left
    training = Training(TrainConfig.model_validate(XOR_RPROP), history_points=301)
    training.advance(9)
    steps = training.optimizer.state[training.flat]["step_size"][:8].flatten().double().clone()
    changed = training.optimizer.state[training.flat]["sign_changed"][:8].double().mean().clone()
    training.advance(1)
    assert training.history.epochs[-1] == 9 and bool(training.running[:8].all())
    recorded = training.history.telemetry[-1][0]  # the only group
    assert recorded["step_size_p50"] == pytest.approx(float(steps.quantile(0.5)))
    assert recorded["step_size_p90"] == pytest.approx(float(steps.quantile(0.9)))
    assert recorded["step_size_frac_at_max"] == float((steps >= 50.0).double().mean())
    assert recorded["sign_change_rate"] == pytest.approx(float(changed))


@pytest.mark.parametrize(("spec", "expected"), [
    (XOR_RPROP, {"loss_curves.png", "optimizer_state.png", "decision_boundary.png"}),
    (ROSENBROCK_ADAM, {"loss_curves.png", "optimizer_state.png", "trajectory.png"}),
    (PARITY_MOMENTUM, {"loss_curves.png"}),  # 4 inputs: no boundary; no Rprop/Adam state
], ids=["xor-rprop", "rosenbrock-adam", "parity-momentum"])
def test_each_task_gets_the_plots_that_fit_it(tmp_path: Path, spec: dict[str, object],
                                              expected: set[str]) -> None:
    _trial(spec, tmp_path)
    drawn = plots.render(tmp_path, tmp_path / "plots")
    assert {path.name for path in drawn} == expected
    assert all(_is_png(path) for path in drawn)


def test_the_trajectory_is_the_path_the_points_took(tmp_path: Path) -> None:
    training = _trial(ROSENBROCK_ADAM, tmp_path)
    result = training.result()
    assert result.history_weights is not None
    assert result.history_weights.shape == (len(result.history_epochs), 3, 2)
    assert torch.equal(result.history_weights[-1], result.final_weights)
    assert torch.equal(result.history_weights[0], result.initial_weights)
