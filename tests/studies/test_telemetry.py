"""Optimizer-state telemetry of a population of several configurations, all groups at once,
against each group's values taken on its own with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from studies.engine import TrainConfig, Training, telemetry

GROUPS, SEEDS = 3, 40


def _training(optimizer: dict[str, object], per_member: dict[str, torch.Tensor]) -> Training:
    config = TrainConfig(task="xor", optimizer=optimizer, seeds=SEEDS,
                         stop={"target": None, "max_epochs": 100})
    training = Training(config, seeds=list(range(SEEDS)) * GROUPS, per_member=per_member,
                        history_points=10, groups=GROUPS)
    training.advance(25)
    return training


def _reference(values: np.ndarray, name: str) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {}
    return {f"{name}_p{round(q * 100)}": float(np.quantile(finite, q))
            for q in telemetry.QUANTILES}


def _close(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-12, abs_tol=1e-15), name


def test_rprop_telemetry_of_each_group_is_that_groups_own() -> None:
    eta_plus = torch.tensor([1.1, 1.2, 1.5], dtype=torch.float64).repeat_interleave(SEEDS)
    delta_max = torch.tensor([0.15, 50.0, 0.2], dtype=torch.float64).repeat_interleave(SEEDS)
    training = _training({"name": "rprop", "variant": "iRprop+", "delta_min": 1e-3},
                         {"eta_plus": eta_plus, "delta_max": delta_max})
    state = training.optimizer.state[training.flat]
    step_size = state["step_size"].double().numpy().copy()
    step_size[3, 0] = math.inf  # a value that is not finite stays out of the quantiles
    state["step_size"][3, 0] = math.inf
    rows = torch.tensor([r for r in range(GROUPS * SEEDS) if r not in (5, 6)])
    rows = rows[rows // SEEDS != 2]  # the third group has no rows: no telemetry
    group_of_rows = rows // SEEDS
    got = telemetry.by_group(training.optimizer, rows, group_of_rows, GROUPS + 1)
    sign_changed = state["sign_changed"].numpy()
    for group in range(GROUPS + 1):
        mine = rows[group_of_rows == group].numpy()
        if mine.size == 0:
            assert got[group] == {}
            continue
        steps = step_size[mine]
        expected = _reference(steps, "step_size")
        expected["step_size_frac_at_min"] = float(np.mean(steps <= 1e-3))
        expected["step_size_frac_at_max"] = float(
            np.mean(steps >= delta_max.numpy()[mine][:, None]))
        expected["sign_change_rate"] = float(np.mean(sign_changed[mine]))
        _close(got[group], expected)
    assert got[0]["step_size_frac_at_max"] > 0.0  # the small Δmax of the first group is hit
    assert got[1]["step_size_p50"] != got[0]["step_size_p50"]


def test_adam_telemetry_of_each_group_is_that_groups_own() -> None:
    lr = torch.tensor([0.01, 0.1, 0.3], dtype=torch.float64).repeat_interleave(SEEDS)
    training = _training({"name": "adam"}, {"lr": lr})
    rows = torch.arange(GROUPS * SEEDS)
    got = telemetry.by_group(training.optimizer, rows, rows // SEEDS, GROUPS)
    alone = [telemetry.telemetry(training.optimizer, rows[rows // SEEDS == g])
             for g in range(GROUPS)]
    state = training.optimizer.state[training.flat]
    for group in range(GROUPS):
        mine = slice(group * SEEDS, (group + 1) * SEEDS)
        m = state["exp_avg"][mine].double().numpy()
        v = state["exp_avg_sq"][mine].double().numpy()
        t = float(state["step"])
        beta1, beta2 = 0.9, 0.999
        step = (lr[mine].numpy()[:, None] / (1 - beta1**t) * np.abs(m)
                / (np.sqrt(v) / math.sqrt(1 - beta2**t) + 1e-8))
        expected = _reference(step, "effective_step")
        for name, value in expected.items():  # the effective step is computed in float32
            assert math.isclose(got[group][name], value, rel_tol=1e-5), name
        assert got[group] == alone[group]


def test_a_large_group_is_subsampled_by_rows_and_a_small_one_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond ``_SAMPLE`` elements a group's quantiles come from an even subsample of its
    rows (every k-th); a small group of the same population keeps all its rows."""
    monkeypatch.setattr(telemetry, "_SAMPLE", 100)
    training = _training({"name": "rprop", "variant": "iRprop-"}, {})
    step_size = training.optimizer.state[training.flat]["step_size"].double().numpy()
    rows = torch.cat([torch.arange(0, 40), torch.arange(40, 42)])  # 40 × 9 and 2 × 9 values
    group_of_rows = (rows >= 40).long()
    got = telemetry.by_group(training.optimizer, rows, group_of_rows, 2)
    every = -(-40 * step_size.shape[1] // 100)
    _close({k: v for k, v in got[0].items() if "_p" in k},
           _reference(step_size[0:40:every], "step_size"))
    _close({k: v for k, v in got[1].items() if "_p" in k},
           _reference(step_size[40:42], "step_size"))
    assert got[0]["step_size_frac_at_min"] == float(np.mean(step_size[0:40] <= 1e-6))
