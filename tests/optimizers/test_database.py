"""Generic tests, run once per entry of the optimizer database (tests/optimizers/database.py)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import torch
from torch import Tensor

from tests.optimizers.database import OptimizerEntry, all_entries
from tests.optimizers.problems import (
    NEGNEVITSKY_XOR,
    QUADRATIC_START,
    mlp_weights,
    plain,
    population_weights,
    quadratic,
    train,
    xor_flat_sse,
    xor_member_sse,
    xor_sse,
)

ENTRIES = all_entries()
MEMBERS = 3


def by_name(entries: list[OptimizerEntry]) -> Any:
    return pytest.mark.parametrize("entry", entries, ids=[e.name for e in entries])


def member_kwargs(entry: OptimizerEntry) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """kwargs with per-member tensors for MEMBERS networks, and each member's float kwargs.

    Member i of hyperparameter h takes the i-th of MEMBERS evenly spaced values in h's range.
    """
    population: dict[str, Any] = {**entry.kwargs, "members": MEMBERS}
    alone: list[dict[str, Any]] = [dict(entry.kwargs) for _ in range(MEMBERS)]
    for key, (low, high) in entry.per_member.items():
        values = torch.linspace(low, high, MEMBERS, dtype=torch.float64)
        element = re.fullmatch(r"(\w+)\[(\d+)\]", key)
        if element is None:
            population[key] = values
            for i, kwargs in enumerate(alone):
                kwargs[key] = values[i].item()
        else:
            name, index = element[1], int(element[2])
            population[name] = replaced(population[name], index, values)
            for i, kwargs in enumerate(alone):
                kwargs[name] = replaced(kwargs[name], index, values[i].item())
    return population, alone


def replaced(items: Any, index: int, value: Any) -> tuple[Any, ...]:
    return tuple(value if i == index else item for i, item in enumerate(items))


def leaves(tensors: list[Tensor]) -> list[Tensor]:
    return [t.clone().requires_grad_() for t in tensors]


@by_name([e for e in ENTRIES if e.torch_reference is not None])
def test_equals_torch_bit_for_bit_in_float64(entry: OptimizerEntry) -> None:
    assert entry.torch_reference is not None
    ours, theirs = leaves(mlp_weights(0)), leaves(mlp_weights(0))
    ours_trajectory = train(entry.optimizer(ours, **entry.kwargs), ours, xor_sse, 60)
    torch_trajectory = train(entry.torch_reference(theirs), theirs, xor_sse, 60)
    for step, (a, b) in enumerate(zip(ours_trajectory, torch_trajectory, strict=True)):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), f"step {step + 1}"
    assert not torch.equal(ours_trajectory[-1][0], mlp_weights(0)[0]), "the weights never moved"


@by_name([e for e in ENTRIES if e.reference_loop is not None])
def test_matches_the_plain_python_reference_loop(entry: OptimizerEntry) -> None:
    assert entry.reference_loop is not None
    steps = 60
    expected = entry.reference_loop(entry.kwargs)(list(NEGNEVITSKY_XOR), plain(xor_flat_sse), steps)
    w = torch.tensor(NEGNEVITSKY_XOR, dtype=torch.float64, requires_grad=True)
    got = train(entry.optimizer([w], **entry.kwargs), [w], lambda p: xor_flat_sse(p[0]), steps)
    assert len(expected) == steps
    for step, (weights, reference) in enumerate(zip(got, expected, strict=True)):
        difference = (weights[0] - torch.tensor(reference, dtype=torch.float64)).abs().max()
        # Not bit for bit: torch's vectorised kernels round differently from Python floats
        # (fused multiply-adds on some CPUs), and 60 steps of a chaotic map amplify that.
        assert difference <= 1e-10, f"step {step + 1}: weights differ by {difference.item()}"
    assert (got[-1][0] - torch.tensor(NEGNEVITSKY_XOR, dtype=torch.float64)).abs().max() > 1e-3


@by_name(ENTRIES)
@pytest.mark.parametrize("population", [False, True], ids=["one-network", "per-member"])
def test_state_dict_round_trip_then_lockstep(entry: OptimizerEntry, population: bool) -> None:
    """Save after 5 steps, load into a fresh optimizer on a copy, then step both 10 times.

    The fresh optimizer is built from the entry's float kwargs: with per-member
    hyperparameters, only the loaded state can give it the members' values back.
    """
    if population:
        kwargs, _ = member_kwargs(entry)
        weights, loss = population_weights(0, MEMBERS), xor_member_sse
    else:
        kwargs, weights, loss = entry.kwargs, mlp_weights(0), xor_sse
    fresh_kwargs = {**entry.kwargs, "members": MEMBERS} if population else entry.kwargs
    per_member_loss = population and entry.needs_loss
    first = leaves(weights)
    optimizer = entry.optimizer(first, **kwargs)
    train(optimizer, first, loss, 5, per_member_loss=per_member_loss)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    second = leaves([p.detach() for p in first])
    restored = entry.optimizer(second, **fresh_kwargs)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(10):
        train(optimizer, first, loss, 1, per_member_loss=per_member_loss)
        train(restored, second, loss, 1, per_member_loss=per_member_loss)
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@by_name(ENTRIES)
def test_error_inputs_raise_their_exact_message(entry: OptimizerEntry) -> None:
    assert entry.error_inputs, "every entry lists its error inputs"
    for error in entry.error_inputs:
        kwargs = {**entry.kwargs, **error.kwargs}
        members = kwargs.get("members")
        shape: tuple[int, ...] = (2,)
        if isinstance(members, int) and not isinstance(members, bool) and members > 0:
            shape = (members, 2)
        params = [torch.zeros(shape, dtype=torch.float64, requires_grad=True)]
        with pytest.raises(ValueError) as raised:
            entry.optimizer(params, **kwargs)
        assert re.fullmatch(error.message, str(raised.value)), (error.kwargs, str(raised.value))


@by_name(ENTRIES)
def test_a_few_steps_lower_a_convex_quadratic(entry: OptimizerEntry) -> None:
    w = torch.tensor(QUADRATIC_START, dtype=torch.float64, requires_grad=True)
    start = quadratic(w).item()
    train(entry.optimizer([w], **entry.kwargs), [w], lambda p: quadratic(p[0]), 5)
    assert quadratic(w).item() < start


@by_name([e for e in ENTRIES if e.per_member])
def test_each_member_follows_its_own_lone_run(entry: OptimizerEntry) -> None:
    """Member i, with per-member hyperparameters, equals a lone run with member i's floats."""
    steps = 40
    population_kwargs, alone_kwargs = member_kwargs(entry)
    weights = leaves(population_weights(0, MEMBERS))
    population = train(
        entry.optimizer(weights, **population_kwargs),
        weights,
        xor_member_sse,
        steps,
        per_member_loss=entry.needs_loss,
    )
    for i, kwargs in enumerate(alone_kwargs):
        alone_weights = leaves(mlp_weights(i))
        alone = train(entry.optimizer(alone_weights, **kwargs), alone_weights, xor_sse, steps)
        for step in range(steps):
            for member_tensor, alone_tensor in zip(population[step], alone[step], strict=True):
                if entry.per_member_bitwise:
                    assert torch.equal(member_tensor[i], alone_tensor), f"member {i}, step {step}"
                else:
                    torch.testing.assert_close(member_tensor[i], alone_tensor, rtol=0, atol=1e-12)
