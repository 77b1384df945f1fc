"""The population engine's behaviour: stop rules and statuses, learning modes, paired seeds,
compaction, the regulariser, user modules, torch.compile and its fallback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from optimizers import rprop
from studies import tasks
from studies.engine import TrainConfig, Training, train
from studies.engine import kernels as engine_kernels
from studies.engine.schedule import epoch_order
from tests.studies.modules import xor_net

XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)


def _config(**fields: Any) -> TrainConfig:
    data: dict[str, Any] = {"task": "xor", "optimizer": {"name": "rprop", "variant": "iRprop-"},
                            "seeds": 8}
    data.update(fields)
    return TrainConfig.model_validate(data)


def test_same_config_same_result() -> None:
    config = _config(mode="online", stop={"max_epochs": 30})
    first, second = train(config), train(config)
    assert first.status == second.status and first.epochs == second.epochs
    assert torch.equal(first.final_weights, second.final_weights)


def test_paired_seeds_start_every_arm_from_the_same_weights() -> None:
    rprop = train(_config(seeds=[3, 7, 11], stop={"max_epochs": 5}))
    adam = train(_config(seeds=[11, 3], optimizer={"name": "adam"}, stop={"max_epochs": 5}))
    assert torch.equal(rprop.initial_weights[2], adam.initial_weights[0])
    assert torch.equal(rprop.initial_weights[0], adam.initial_weights[1])
    assert not torch.equal(rprop.initial_weights[0], rprop.initial_weights[1])


def test_members_keep_their_results_when_the_population_is_compacted() -> None:
    """300 members: most converge early, the population is compacted, and members that stop
    before and after compaction give bit for bit their lone runs."""
    config = _config(seeds=list(range(300)), stop={"target": {"below": 0.05}, "max_epochs": 300})
    result = train(config)
    assert result.compactions >= 1
    order = sorted(range(300), key=lambda i: result.epochs[i])
    for member in [order[0], order[150], order[-1]]:
        alone = train(config.model_copy(update={"seeds": [member]}))
        assert (alone.status[0], alone.epochs[0]) == (result.status[member], result.epochs[member])
        assert torch.equal(alone.final_weights[0], result.final_weights[member])


def test_a_diverging_member_is_recorded_and_the_others_train_on() -> None:
    config = TrainConfig(task="rosenbrock", optimizer={"name": "steepest_descent", "lr": 0.001},
                         stop={"target": {"quantity": "gap", "below": 1e-3},
                               "max_epochs": 200}, seeds=4)
    lr = torch.tensor([0.001, 0.5, 0.001, 0.5], dtype=torch.float64)
    result = train(config, per_member={"lr": lr})
    assert result.status[1] == result.status[3] == "diverged"
    assert result.status[0] == result.status[2] == "max_epochs"
    alone = train(config, seeds=[0])
    assert torch.equal(alone.final_weights[0], result.final_weights[0])
    summary = result.summary()
    assert summary["diverged_rate"] == 0.5
    assert result.to_json()["members"][1]["final_loss"] is None  # not finite → null in JSON


def test_a_member_without_progress_is_stalled() -> None:
    config = _config(optimizer={"name": "steepest_descent", "lr": 1e-7},
                     stop={"max_epochs": 500, "stall_patience": 20, "stall_tolerance": 1e-6})
    result = train(config)
    assert set(result.status) == {"stalled"}
    assert all(epochs == 20 for epochs in result.epochs)


def test_gradient_threshold_stops_as_in_r_neuralnet() -> None:
    config = TrainConfig(task="quadratic", optimizer={"name": "steepest_descent", "lr": 0.1},
                         stop={"target": None, "gradient_below": 1e-4, "max_epochs": 1000},
                         seeds=1)
    result = train(config)
    assert result.status == ["converged"]
    x = result.final_weights[0].clone().requires_grad_(True)
    tasks.get("quadratic").objective(x).backward()  # type: ignore[union-attr]
    assert x.grad is not None and float(x.grad.abs().max()) < 1e-4
    before = train(config.model_copy(update={"stop": config.stop.model_copy(
        update={"max_epochs": result.epochs[0] - 1, "gradient_below": None})}))
    y = before.final_weights[0].clone().requires_grad_(True)
    tasks.get("quadratic").objective(y).backward()  # type: ignore[union-attr]
    assert y.grad is not None and float(y.grad.abs().max()) >= 1e-4


def test_presented_and_end_of_epoch_evaluations_differ_as_defined() -> None:
    """Online: 'presented' sums each pattern's error before its update; 'end_of_epoch'
    re-evaluates after the epoch. Both are checked against a hand computation."""
    seeds = list(range(16))
    stop = {"max_epochs": 400}
    presented = train(_config(mode="online", seeds=seeds, loss="half_sse",
                              optimizer={"name": "steepest_descent", "lr": 2.0},
                              stop={**stop, "target": {"below": 0.05,
                                                       "evaluation": "presented"}}))
    end = train(_config(mode="online", seeds=seeds, loss="half_sse",
                        optimizer={"name": "steepest_descent", "lr": 2.0},
                        stop={**stop, "target": {"below": 0.05, "evaluation": "end_of_epoch"}}))
    assert presented.evaluation == "presented" and end.evaluation == "end_of_epoch"
    assert presented.epochs != end.epochs
    for member in range(16):
        if end.status[member] != "converged":
            continue
        net = _plain_xor(end.final_weights[member])
        with torch.no_grad():
            sse = float(((XOR_TARGETS - net(XOR_INPUTS)) ** 2).sum())
        assert sse == pytest.approx(end.final_quantity[member], rel=1e-12)
        assert sse < 0.05


def _plain_xor(flat: torch.Tensor) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()).double()
    offset = 0
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(flat[offset : offset + parameter.numel()].view_as(parameter))
            offset += parameter.numel()
    return net


def test_minibatch_of_the_whole_set_in_fixed_order_is_batch_learning() -> None:
    stop = {"target": None, "max_epochs": 40}
    batch = train(_config(mode="batch", stop=stop))
    whole = train(_config(mode="minibatch", batch_size=4, order="fixed", stop=stop))
    assert torch.equal(batch.final_weights, whole.final_weights)


def test_shuffled_order_is_a_new_permutation_per_member_and_epoch() -> None:
    orders = {tuple(epoch_order(seed, epoch, 4)) for seed in range(6) for epoch in range(1, 6)}
    assert len(orders) > 10
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)


def test_l2_regulariser_adds_two_lambda_w_on_weights_not_biases() -> None:
    config = _config(optimizer={"name": "steepest_descent", "lr": 0.1}, l2=0.01, seeds=1,
                     stop={"target": None, "max_epochs": 1})
    result = train(config)
    net = _plain_xor(result.initial_weights[0])
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    loss = ((XOR_TARGETS - net(XOR_INPUTS)) ** 2).sum() + 0.01 * sum((w * w).sum()
                                                                    for w in weights)
    loss.backward()
    expected = torch.cat([(p - 0.1 * p.grad).detach().reshape(-1)  # type: ignore[operator]
                          for p in net.parameters()])
    torch.testing.assert_close(result.final_weights[0], expected, rtol=0, atol=1e-15)


def test_a_users_module_trains_as_a_population_through_torch_func() -> None:
    config = TrainConfig(task="xor", model={"type": "module",
                                            "path": "tests.studies.modules:xor_net",
                                            "kwargs": {"hidden": 3}},
                         optimizer={"name": "steepest_descent", "lr": 0.5},
                         stop={"target": None, "max_epochs": 20}, seeds=[4, 9])
    result = train(config)
    for member, seed in enumerate([4, 9]):
        torch.manual_seed(seed)
        net = xor_net(hidden=3).double()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
        for _ in range(20):
            optimizer.zero_grad()
            ((XOR_TARGETS - net(XOR_INPUTS)) ** 2).sum().backward()
            optimizer.step()
        expected = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(result.final_weights[member], expected, rtol=0, atol=1e-12)


def test_classification_reports_training_and_validation_accuracy() -> None:
    config = TrainConfig(task="iris", model={"layers": [4, 8, 3], "output": "linear"},
                         loss="cross_entropy", optimizer={"name": "adam", "lr": 0.05},
                         stop={"target": {"quantity": "error_rate", "below": 0.05},
                               "max_epochs": 300}, seeds=4)
    result = train(config)
    assert result.validation_accuracy is not None and result.train_accuracy is not None
    assert min(result.validation_accuracy) > 0.8
    for member, status in enumerate(result.status):
        if status == "converged":
            assert result.train_accuracy[member] > 0.95


@pytest.mark.parametrize(("fields", "fused"), [
    ({}, True),
    ({"l2": 1e-3}, False),  # the regulariser's gradient is added outside the kernel
], ids=["pass-and-update-fused", "pass-then-update"])
def test_compiled_run_matches_eager(fields: dict[str, Any], fused: bool) -> None:
    config = _config(seeds=64, stop={"target": None, "max_epochs": 30}, **fields)
    eager = train(config)
    compiled = config.model_copy(update={"compile": True})
    assert Training(compiled).fused_update is fused
    fast = train(compiled)
    torch.testing.assert_close(fast.final_weights, eager.final_weights, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["Rprop+", "Rprop-", "iRprop+", "iRprop-"])
def test_compiled_rprop_matches_eager_through_stops_and_compaction(variant: str) -> None:
    """The compiled pass and update, fused in one kernel (column-major population,
    hyperparameters as tensors) against eager: members stop at the target, the population
    is compacted, the sign-change telemetry is recorded, and one member has
    hyperparameters of its own."""
    config = _config(seeds=128, optimizer={"name": "rprop", "variant": variant},
                     stop={"target": {"quantity": "sse", "below": 0.05}, "max_epochs": 200})
    per_member = {"eta_plus": torch.full((128,), 1.2, dtype=torch.float64)}
    per_member["eta_plus"][5] = 1.35
    eager = train(config, per_member=per_member, history_points=50)
    compiled = config.model_copy(update={"compile": True})
    assert Training(compiled, per_member=per_member).fused_update
    fast = train(compiled, per_member=per_member, history_points=50)
    assert fast.status == eager.status and fast.epochs == eager.epochs
    assert "converged" in eager.status and "max_epochs" in eager.status  # both kinds of end
    torch.testing.assert_close(fast.final_weights, eager.final_weights, rtol=1e-12, atol=1e-12)
    assert "sign_change_rate" in eager.history_telemetry
    assert fast.history_telemetry.keys() == eager.history_telemetry.keys()
    for name, series in eager.history_telemetry.items():
        torch.testing.assert_close(torch.tensor(fast.history_telemetry[name]),
                                   torch.tensor(series), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_populations_of_one_shape_share_the_compiled_kernels(
        caplog: pytest.LogCaptureFixture) -> None:
    """Every trial of a study builds a new population: the compiled pass and Rprop update
    are reused across them, whatever the seeds and hyperparameters (torch.compile would
    otherwise compile again for each new optimizer and, past its recompile limit, run
    eager)."""
    from torch._dynamo.utils import counters

    def run(first_seed: int, eta_plus: float, delta0: float) -> None:
        train(_config(seeds=list(range(first_seed, first_seed + 64)), compile=True,
                      optimizer={"name": "rprop", "variant": "iRprop+", "eta_plus": eta_plus,
                                 "delta0": delta0},
                      stop={"target": None, "max_epochs": 20}), history_points=10)

    with caplog.at_level(logging.WARNING):
        run(0, 1.2, 0.1)
        graphs = counters["stats"]["unique_graphs"]
        for index, (eta_plus, delta0) in enumerate([(1.3, 0.05), (1.1, 0.2), (1.25, 0.07)] * 4):
            run(64 * (index + 1), eta_plus, delta0)
    assert counters["stats"]["unique_graphs"] == graphs
    assert "running eager" not in caplog.text and "recompile_limit" not in caplog.text


def test_compile_falls_back_to_eager_when_unavailable(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(function: Any, **_: Any) -> Any:
        def fails(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no C++ compiler")
        return fails

    monkeypatch.setattr(torch, "compile", broken)
    # compiled kernels are made once per process: forget those of earlier tests (and ours)
    kernels = [engine_kernels.compiled_pass, engine_kernels.compiled_epoch, rprop._compiled]
    for kernel in kernels:
        kernel.cache_clear()
    config = _config(stop={"target": None, "max_epochs": 10})
    try:
        with caplog.at_level(logging.WARNING):
            fallen = train(config.model_copy(update={"compile": True}))
    finally:
        for kernel in kernels:
            kernel.cache_clear()
    assert "running eager" in caplog.text
    assert torch.equal(fallen.final_weights, train(config).final_weights)


def test_per_member_hyperparameters_need_one_value_per_seed() -> None:
    with pytest.raises(ValueError, match=r"per_member\['lr'\] needs one value per seed \(8\)"):
        train(_config(optimizer={"name": "adam"}), per_member={"lr": torch.ones(3)})


def test_history_is_bounded_and_keeps_stopped_members_at_their_final_loss() -> None:
    result = train(_config(seeds=16, stop={"target": {"below": 0.01}, "max_epochs": 1000}),
                   history_points=50)
    assert result.history_loss is not None
    assert len(result.history_epochs) <= 51
    assert result.history_loss.shape == (len(result.history_epochs), 16)
    for member, status in enumerate(result.status):
        if status == "converged":
            after = [i for i, e in enumerate(result.history_epochs) if e > result.epochs[member]]
            if after:
                column = result.history_loss[after, member]
                assert torch.all(column == column[0])


@pytest.mark.parametrize(("mode", "optimizer", "max_epochs", "check_every"), [
    ("batch", {"name": "rprop", "variant": "iRprop+"}, 120, 1),
    ("batch", {"name": "rprop", "variant": "iRprop+"}, 120, 4),  # stops read as on a GPU
    ("batch", {"name": "adam", "lr": 0.2}, 150, 1),
    ("online", {"name": "steepest_descent", "lr": 2.0, "momentum": 0.5}, 150, 1),
    ("online", {"name": "adam", "lr": 0.1}, 200, 1),
])
def test_a_training_saved_and_continued_elsewhere_ends_exactly_as_uninterrupted(
        tmp_path: Path, mode: str, optimizer: dict[str, Any], max_epochs: int,
        check_every: int) -> None:
    """Segments of 7 epochs, each saved to disk and continued by a new Training object (as
    a retried Ray trial does), give bit for bit the uninterrupted result (read every epoch),
    compaction included."""
    config = _config(seeds=200, mode=mode, optimizer=optimizer,
                     stop={"target": {"below": 0.4}, "max_epochs": max_epochs})
    whole = train(config)
    assert whole.compactions >= 1
    path = tmp_path / "state.pt"
    training = Training(config, check_every=check_every)
    interim = []
    while not training.advance(7):
        interim.append(training.interim_summary())
        torch.save(training.state_dict(), path)
        training = Training(config, check_every=check_every)
        training.load_state_dict(torch.load(path, weights_only=True))
    pieces = training.result()
    assert pieces.status == whole.status and pieces.epochs == whole.epochs
    assert torch.equal(pieces.final_weights, whole.final_weights)
    assert pieces.history_epochs == whole.history_epochs
    assert pieces.history_loss is not None and whole.history_loss is not None
    assert torch.equal(pieces.history_loss, whole.history_loss)
    assert pieces.history_telemetry.keys() == whole.history_telemetry.keys()
    for name, series in whole.history_telemetry.items():  # NaN where a record had no value
        np.testing.assert_array_equal(pieces.history_telemetry[name], series)
    assert [s["epoch"] for s in interim] == sorted(s["epoch"] for s in interim)
    rates = [s["success_rate"] for s in interim]
    assert rates == sorted(rates)  # converged members stay converged


def _same_history(loaded: Any, saved: Any) -> None:
    assert loaded.epochs == saved.epochs
    assert all(torch.equal(a, b) for a, b in zip(loaded.loss, saved.loss, strict=True))
    np.testing.assert_equal(loaded.telemetry, saved.telemetry)  # NaN values included
    assert all(torch.equal(a, b) for a, b in zip(loaded.weights, saved.weights, strict=True))


@pytest.mark.parametrize("task", ["xor", "rosenbrock"])
def test_a_history_saved_either_way_loads_back_whole(task: str) -> None:
    """The tables a history saves now, and the lists a checkpoint of an earlier optistudy
    holds (a study started before an upgrade and resumed after it), load back the same
    history, a telemetry value that was NaN included; groups of configurations too."""
    config = _config(seeds=8, optimizer={"name": "rprop", "variant": "iRprop+"},
                     stop={"max_epochs": 60}) if task == "xor" else TrainConfig(
        task=task, seeds=6, optimizer={"name": "adam", "lr": 0.01},
        stop={"target": {"quantity": "gap", "below": 1e-9}, "max_epochs": 60})
    training = Training(config, groups=2)
    training.advance(25)
    history = training.history
    history.telemetry[1][0][next(iter(history.telemetry[1][0]))] = float("nan")
    earlier = {"epochs": list(history.epochs), "loss": [loss.cpu() for loss in history.loss],
               "telemetry": [[dict(v) for v in per_group] for per_group in history.telemetry],
               "weights": list(history.weights), "last_loss": history.last_loss.cpu(),
               "last_weights": history.last_weights.cpu()}
    for state in (history.state_dict(), earlier):
        fresh = Training(config, groups=2).history
        fresh.load_state_dict(state)
        _same_history(fresh, history)


@pytest.mark.parametrize(("fields", "per_member"), [
    ({"seeds": 300, "stop": {"target": {"below": 0.05}, "max_epochs": 300}}, None),
    ({"seeds": 128, "optimizer": {"name": "rprop", "variant": "iRprop+"}, "compile": True,
      "stop": {"target": {"quantity": "sse", "below": 0.05}, "max_epochs": 200}}, None),
    ({"optimizer": {"name": "steepest_descent", "lr": 1e-7},
      "stop": {"max_epochs": 500, "stall_patience": 20, "stall_tolerance": 1e-6}}, None),
    ({"task": "quadratic", "optimizer": {"name": "steepest_descent", "lr": 0.1}, "seeds": 3,
      "stop": {"target": None, "gradient_below": 1e-4, "max_epochs": 1000}}, None),
    ({"task": "rosenbrock", "optimizer": {"name": "steepest_descent", "lr": 0.001}, "seeds": 4,
      "stop": {"target": {"quantity": "gap", "below": 1e-3}, "max_epochs": 200}},
     {"lr": torch.tensor([0.001, 0.5, 0.001, 0.5], dtype=torch.float64)}),
], ids=["target-compaction", "compiled-iRprop+", "stall", "gradient", "divergence"])
def test_stops_read_every_few_epochs_give_the_outcomes_read_every_epoch(
        fields: dict[str, Any], per_member: dict[str, Tensor] | None) -> None:
    """What a GPU does (``check_every`` > 1: the stop rule's decisions stay on the device
    and the host reads them every few epochs), run on the CPU: every member's status, epoch,
    stop quantity, final weights and loss history are those of the check every epoch."""
    config = _config(**fields)
    every_epoch = train(config, per_member=per_member, history_points=50, check_every=1)
    for check_every in (5, 16):
        windows = train(config, per_member=per_member, history_points=50,
                        check_every=check_every)
        assert windows.status == every_epoch.status and windows.epochs == every_epoch.epochs
        np.testing.assert_array_equal(windows.final_quantity, every_epoch.final_quantity)
        assert torch.equal(windows.final_weights, every_epoch.final_weights)
        assert windows.history_epochs == every_epoch.history_epochs
        assert every_epoch.history_loss is not None and windows.history_loss is not None
        assert torch.equal(windows.history_loss, every_epoch.history_loss)
        assert [t is None for t in windows.time_to_target_s] == \
            [t is None for t in every_epoch.time_to_target_s]
        converged = sorted((epochs, t) for epochs, t in zip(
            windows.epochs, windows.time_to_target_s, strict=True) if t is not None)
        assert [t for _, t in converged] == sorted(t for _, t in converged)


def test_check_every_must_be_a_whole_number_of_epochs() -> None:
    with pytest.raises(ValueError, match="check_every must be a whole number of epochs >= 1"):
        Training(_config(), check_every=0)
