"""Module factories for the ModulePopulation tests (``tests.models.factories:NAME``)."""

from __future__ import annotations

from torch import Tensor, nn


def tiny_mlp(hidden: int = 3, inputs: int = 2, outputs: int = 1) -> nn.Module:
    """inputs → tanh hidden → linear outputs, initialised by torch's default (global RNG)."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))


def with_batch_norm() -> nn.Module:
    """A module whose batch norm keeps running statistics in buffers."""
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))


class WithBuffer(nn.Module):
    """A linear layer plus a constant offset kept in a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.register_buffer("offset", self.linear.weight.new_zeros(1), persistent=False)

    def forward(self, inputs: Tensor) -> Tensor:
        result: Tensor = self.linear(inputs) + self.offset
        return result


def not_a_module() -> list[int]:
    """A factory that returns something other than a module."""
    return [1, 2, 3]
