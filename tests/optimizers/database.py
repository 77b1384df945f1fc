"""The optimizer test database: one entry per algorithm (and variant), run by generic tests.

Modelled on torch's ``common_optimizers.py``: each entry names the optimizer, valid
hyperparameters, the reference it must match (torch's own optimizer where one exists,
otherwise a plain-Python loop written from ALGORITHMS.md), its error inputs with the exact
message, and which hyperparameters may be given per member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class ErrorInput:
    """Constructor kwargs (merged over the entry's kwargs) and the exact message regex."""

    kwargs: dict[str, Any]
    message: str


ReferenceLoop = Callable[
    [list[float], Callable[[list[float]], tuple[float, list[float]]], int], list[list[float]]
]
"""(initial weights, f -> (loss, gradient), steps) -> weights after each step, in plain Python."""


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    """Unique id of the entry, e.g. ``"rprop-iRprop+"``."""
    optimizer: type[torch.optim.Optimizer]
    kwargs: dict[str, Any]
    """Valid hyperparameters used by the generic tests."""
    torch_reference: Callable[[Sequence[torch.Tensor]], torch.optim.Optimizer] | None = None
    """Build torch's own optimizer that must match this entry bit for bit in float64."""
    reference_loop: Callable[[dict[str, Any]], ReferenceLoop] | None = None
    """Given ``kwargs``, the plain-Python reference loop written from ALGORITHMS.md."""
    error_inputs: list[ErrorInput] = field(default_factory=list)
    needs_loss: bool = False
    """The closure must return the loss (iRprop+, GRprop's Wolfe line search)."""
    per_member: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Hyperparameters that may differ per member, with a (low, high) range of valid values.
    A key is a constructor argument, or ``"name[i]"`` for element i of a tuple argument."""
    per_member_bitwise: bool = False
    """In float64, member i of a population equals its lone run bit for bit (not only to 1e-12)."""


def all_entries() -> list[OptimizerEntry]:
    from tests.optimizers.entries_gradient import ENTRIES as GRADIENT
    from tests.optimizers.entries_rprop import ENTRIES as RPROP

    return [*GRADIENT, *RPROP]
