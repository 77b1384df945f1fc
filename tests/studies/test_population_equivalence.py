"""The engine's main correctness test (DESIGN.md): member i of a population follows exactly
the trajectory of seed i trained alone.

For every algorithm in the optimizer database, a population of 64 XOR networks with
per-member hyperparameters is trained by the engine for up to 100 epochs with a target that
about half the members reach early (they freeze). Selected members are then trained alone,
two ways:

- by the engine with that one seed and the member's hyperparameters as plain floats: status,
  epochs to target, initial and final weights identical, bit for bit (float64; the engine
  aligns population sizes so that no member falls in a kernel's scalar tail, see
  ``studies.engine.trainer.aligned_size``);
- by a plain torch loop (``torch.nn.Linear`` layers started from the member's initial
  weights, the optimizer with ``members=None``): the same within 1e-10. Batched matmuls and
  ``addmm`` round differently in the last bit, and some algorithms (RMSProp with a tiny ε
  on a saturated sigmoid, acting almost as sign(g)) amplify a last-bit difference
  chaotically over many epochs, and GRprop divides by the smallest |g|; so this cross-check
  runs 25 epochs and allows a relative 1e-10.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from studies.engine import TrainConfig, TrainResult, train
from studies.engine.schedule import epoch_order
from tests.optimizers.database import OptimizerEntry, all_entries

MEMBERS = 64
MAX_EPOCHS = 100
PLAIN_TORCH_EPOCHS = 25
CHECKED = 10
XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)


def _per_member(entry: OptimizerEntry) -> dict[str, Tensor]:
    """Distinct values per member across each hyperparameter's valid range (shuffled so that
    the hyperparameters vary independently)."""
    values = {}
    for offset, (name, (low, high)) in enumerate(sorted(entry.per_member.items())):
        grid = torch.linspace(low, high, MEMBERS, dtype=torch.float64)
        values[name] = torch.roll(grid, shifts=7 * offset)[torch.randperm(
            MEMBERS, generator=torch.Generator().manual_seed(offset))]
    return values


def _member_kwargs(entry: OptimizerEntry, per_member: dict[str, Tensor],
                   member: int) -> dict[str, Any]:
    kwargs = dict(entry.kwargs)
    for key, values in per_member.items():
        name, _, index = key.partition("[")
        if index:
            parts = list(kwargs[name])
            parts[int(index.rstrip("]"))] = float(values[member])
            kwargs[name] = tuple(parts)
        else:
            kwargs[name] = float(values[member])
    return kwargs


def _config(entry: OptimizerEntry, mode: str, target: float | None,
            kwargs: dict[str, Any] | None = None, seeds: list[int] | None = None,
            max_epochs: int = MAX_EPOCHS) -> TrainConfig:
    return TrainConfig(
        task="xor", model={"type": "mlp", "layers": [2, 2, 1]}, init={"scheme": "haykin"},
        loss="sse", optimizer={"name": _registry_name(entry), **_plain(kwargs or entry.kwargs)},
        mode=mode, order="shuffled",
        stop={"target": None if target is None else {"quantity": "sse", "below": target},
              "max_epochs": max_epochs},
        seeds=seeds or list(range(100, 100 + MEMBERS)))


def _registry_name(entry: OptimizerEntry) -> str:
    return entry.name.split("-")[0]


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in kwargs.items()}


def _population(entry: OptimizerEntry, mode: str) -> tuple[TrainResult, dict[str, Tensor], float]:
    """Train with a target that roughly half the members reach before the last epoch."""
    per_member = _per_member(entry)
    free = train(_config(entry, mode, None), per_member=per_member, history_points=MAX_EPOCHS + 1)
    assert free.history_loss is not None
    halfway = free.history_epochs.index(MAX_EPOCHS // 2)
    target = float(free.history_loss[halfway].double().median())
    result = train(_config(entry, mode, target), per_member=per_member)
    return result, per_member, target


def _plain_torch(entry: OptimizerEntry, kwargs: dict[str, Any], initial: Tensor, seed: int,
                 mode: str, target: float, max_epochs: int) -> tuple[str, int, Tensor]:
    """Seed ``seed`` trained alone with plain torch: (status, epochs, final flat weights)."""
    net = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()).double()
    with torch.no_grad():
        offset = 0
        for parameter in net.parameters():
            parameter.copy_(initial[offset : offset + parameter.numel()].view_as(parameter))
            offset += parameter.numel()
    optimizer = entry.optimizer(net.parameters(), **kwargs)

    def sse(inputs: Tensor, targets: Tensor) -> Tensor:
        return ((targets - net(inputs)) ** 2).sum()

    def closure_for(inputs: Tensor, targets: Tensor) -> Any:
        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = sse(inputs, targets)
            loss.backward()
            return loss.detach()
        return closure

    def flat() -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    if mode == "batch":
        for epoch in range(max_epochs + 1):
            with torch.no_grad():
                if sse(XOR_INPUTS, XOR_TARGETS) < target:
                    return "converged", epoch, flat()
            if epoch == max_epochs:
                return "max_epochs", epoch, flat()
            optimizer.step(closure_for(XOR_INPUTS, XOR_TARGETS))
    for epoch in range(1, max_epochs + 1):
        presented = 0.0
        for pattern in epoch_order(seed, epoch, 4):
            inputs, targets = XOR_INPUTS[pattern : pattern + 1], XOR_TARGETS[pattern : pattern + 1]
            with torch.no_grad():
                presented += float(sse(inputs, targets))
            optimizer.step(closure_for(inputs, targets))
        if presented < target:
            return "converged", epoch, flat()
    return "max_epochs", max_epochs, flat()


def _check(entry: OptimizerEntry, mode: str) -> None:
    result, per_member, target = _population(entry, mode)
    converged = [i for i, s in enumerate(result.status) if s == "converged"]
    running_to_end = [i for i, s in enumerate(result.status) if s == "max_epochs"]
    assert converged and running_to_end, (
        f"{entry.name}: the test needs members that freeze early and members that run to the "
        f"end; got {len(converged)} converged of {MEMBERS}")
    early = [i for i in converged if result.epochs[i] < MAX_EPOCHS]
    assert early, f"{entry.name}: no member converged before the last epoch"
    chosen = sorted({*early[:4], *running_to_end[:3],
                     *range(0, MEMBERS, MEMBERS // (CHECKED - 7))})
    for member in chosen:
        seed = result.seeds[member]
        alone = train(_config(entry, mode, target, _member_kwargs(entry, per_member, member),
                              seeds=[seed]))
        where = f"{entry.name} member {member} (seed {seed})"
        assert (result.status[member], result.epochs[member]) == (alone.status[0],
                                                                  alone.epochs[0]), where
        assert torch.equal(result.initial_weights[member], alone.initial_weights[0]), where
        assert torch.equal(result.final_weights[member], alone.final_weights[0]), (
            f"{where}: differs from its lone run by "
            f"{(result.final_weights[member] - alone.final_weights[0]).abs().max():.3g}")


@pytest.mark.parametrize("mode", ["batch", "online"])
@pytest.mark.parametrize("entry", all_entries(), ids=lambda e: e.name)
def test_engine_trains_like_plain_torch(entry: OptimizerEntry, mode: str) -> None:
    per_member = _per_member(entry)
    result = train(_config(entry, mode, None, max_epochs=PLAIN_TORCH_EPOCHS),
                   per_member=per_member)
    for member in range(0, MEMBERS, 9):
        _, _, final = _plain_torch(entry, _member_kwargs(entry, per_member, member),
                                   result.initial_weights[member], result.seeds[member], mode,
                                   -1.0, PLAIN_TORCH_EPOCHS)
        torch.testing.assert_close(result.final_weights[member], final, rtol=1e-10, atol=1e-10,
                                   msg=lambda m, i=member: f"{entry.name} member {i}: {m}")


@pytest.mark.parametrize("entry", all_entries(), ids=lambda e: e.name)
def test_member_of_a_population_trains_as_if_alone_batch(entry: OptimizerEntry) -> None:
    _check(entry, "batch")


ONLINE = ("steepest_descent-momentum", "rprop-iRprop+", "adam")


@pytest.mark.parametrize("entry", [e for e in all_entries() if e.name in ONLINE],
                         ids=lambda e: e.name)
def test_member_of_a_population_trains_as_if_alone_online_shuffled(entry: OptimizerEntry) -> None:
    _check(entry, "online")
