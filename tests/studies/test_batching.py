"""Batched trials: several Optuna trials trained as one population give each trial exactly
what it gets trained alone, and Optuna sees every configuration as its own trial."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from studies.engine import Training, train
from studies.study import StudySpec, batching
from studies.study.search import TRIAL_BATCH, LedgerSearch, reported

PARAMS = [{"delta0": 0.05, "eta_plus": 1.1}, {"delta0": 0.7, "eta_plus": 1.9},
          {"delta0": 0.2, "eta_plus": 1.35}]


def _spec(search: dict[str, object] | None = None, fixed: dict[str, object] | None = None,
          **fields: object) -> StudySpec:
    return StudySpec.model_validate({
        "name": "batched",
        "tasks": [{"task": "xor", "stop": {"target": {"quantity": "sse", "below": 0.001},
                                           "max_epochs": 300}}],
        "arms": [{"name": "irprop", "optimizer": "rprop",
                  "fixed": {"variant": "iRprop+"} if fixed is None else fixed,
                  "search": search or {"delta0": {"low": 0.01, "high": 1.0, "log": True},
                                       "eta_plus": {"low": 1.05, "high": 2.0}}}],
        "seeds_per_trial": 12, "trials_per_arm": 9, **fields})


def test_each_configuration_of_a_batch_trains_exactly_as_alone() -> None:
    spec = _spec()
    task, arm = spec.tasks[0], spec.arms[0]
    configs = [spec.train_config(task, arm, params) for params in PARAMS]
    base, seeds, per_member = batching.population(configs)
    assert seeds == list(range(12)) * 3 and set(per_member) == {"delta0", "eta_plus"}
    training = Training(base, seeds=seeds, per_member=per_member, groups=3, history_points=50)
    training.advance()
    for config, together in zip(configs, training.group_results(configs), strict=True):
        alone = train(config, history_points=50)
        assert together.config == config
        assert together.status == alone.status and together.epochs == alone.epochs
        assert torch.equal(together.final_weights, alone.final_weights)
        assert torch.equal(together.initial_weights, alone.initial_weights)
        assert together.final_loss == alone.final_loss
        assert together.history_epochs == alone.history_epochs
        assert together.history_loss is not None and alone.history_loss is not None
        assert torch.equal(together.history_loss, alone.history_loss)
        assert together.history_telemetry.keys() == alone.history_telemetry.keys()
        for name, series in alone.history_telemetry.items():
            assert all(a == b or (math.isnan(a) and math.isnan(b))
                       for a, b in zip(together.history_telemetry[name], series, strict=True))
        summary, expected = together.summary(), alone.summary()
        for key in ("success_rate", "epochs_penalised_mean", "epochs_to_target_median"):
            assert summary[key] == expected[key]


def test_configurations_that_differ_beyond_optimizer_numbers_are_not_batched() -> None:
    spec = _spec()
    task, arm = spec.tasks[0], spec.arms[0]
    other = spec.train_config(task, arm, PARAMS[0]).model_copy(update={"mode": "online"})
    with pytest.raises(ValueError, match="differ only in optimizer hyperparameters"):
        batching.population([spec.train_config(task, arm, PARAMS[0]), other])


def test_batch_sizes() -> None:
    arm = _spec().arms[0]
    assert batching.batch_size("auto", arm, trials=100, seeds=100, slots=2) == 13  # 4 waves
    assert batching.batch_size("auto", arm, trials=100, seeds=10_000, slots=2) == 5  # memory
    assert batching.batch_size(7, arm, trials=100, seeds=100, slots=2) == 7
    words = _spec({"variant": {"choices": ["iRprop+", "iRprop-"]}}, fixed={}).arms[0]
    assert batching.batch_size("auto", words, trials=100, seeds=100, slots=2) == 1


def test_the_searcher_asks_and_tells_each_trial_of_a_batch() -> None:
    spec = _spec()
    study = optuna.create_study()
    searcher = LedgerSearch(study, spec.distributions(spec.arms[0]), budget=5,
                            metrics=["epochs_penalised_mean"], modes=["min"], batch=2)
    assert searcher.ray_trials == 3
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert searcher.suggest("t3") == "FINISHED"
    batches = [[number for number, _ in config[TRIAL_BATCH]]  # type: ignore[index]
               for config in configs]
    assert batches == [[0, 1], [2, 3], [4]]
    flattened = {"trials/0/epochs_penalised_mean": 12.0, "trials/1/epochs_penalised_mean": 30.0}
    assert reported(flattened) == {0: {"epochs_penalised_mean": 12.0},
                                   1: {"epochs_penalised_mean": 30.0}}
    searcher.on_trial_complete("t0", flattened)
    searcher.on_trial_complete("t1", {"trials": {"2": {"epochs_penalised_mean": 5.0}}})
    trials = study.get_trials()
    assert [t.value for t in trials[:3]] == [12.0, 30.0, 5.0]
    assert trials[3].state == optuna.trial.TrialState.PRUNED  # ended without its metrics
    assert trials[0].user_attrs["metrics"] == {"epochs_penalised_mean": 12.0}
