"""Forward and backward pass of a small MLP population written weight by weight, for
``torch.compile`` to fuse into one loop over the members.

For networks like XOR 2-2-1 a population's work is a few dozen multiply-adds per member;
batched matmuls and per-operation dispatch dominate it. Written out per weight and per
pattern, every tensor here is one value per member ([K]), so the compiler turns the whole
pass into a single kernel that reads each member's weights once. Eager, this is slower than
``MLP.gradient``: use it only compiled, for small networks (``suits``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from models.activations import ACTIVATIONS, derivative_from_output
from models.mlp import MLP

MAX_TERMS = 1024
"""Largest patterns × weights written out (beyond it compilation takes too long)."""


class Shape(Protocol):
    """What the pass needs of a network: its layer sizes and activations (an ``MLP``, or
    its ``Layout``)."""

    @property
    def sizes(self) -> list[tuple[int, int]] | tuple[tuple[int, int], ...]: ...
    @property
    def activation(self) -> str: ...
    @property
    def output(self) -> str: ...


class Layout(NamedTuple):
    """An MLP's shape as plain values: what a compiled pass may depend on (equal layouts
    of different populations share one compiled kernel instead of recompiling it)."""

    sizes: tuple[tuple[int, int], ...]
    activation: str
    output: str

    @classmethod
    def of(cls, model: MLP) -> Layout:
        return cls(tuple(model.sizes), model.activation, model.output)


def suits(model: MLP, inputs: Tensor) -> bool:
    """Whether the unrolled pass applies: patterns shared by all members, and small."""
    return inputs.dim() == 2 and inputs.shape[0] * model.n_weights <= MAX_TERMS


def _sum(terms: list[Tensor]) -> Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def gradient(model: Shape, flat: Tensor, inputs: Tensor,
             output_gradient: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Outputs [K, patterns, outputs] and ∂loss/∂flat [K, n_weights], as ``MLP.gradient``."""
    patterns = inputs.shape[0]
    names = [model.activation] * (len(model.sizes) - 1) + [model.output]
    layers = []  # per layer: weight[o][i] and bias[o] as [K] columns of flat
    offset = 0
    for fan_out, fan_in in model.sizes:
        weight = [[flat[:, offset + o * fan_in + i] for i in range(fan_in)]
                  for o in range(fan_out)]
        offset += fan_out * fan_in
        layers.append((weight, [flat[:, offset + o] for o in range(fan_out)]))
        offset += fan_out
    # signals[layer][pattern][unit]: the inputs are constants, later signals [K] columns
    signals: list[list[list[Tensor]]] = [
        [[inputs[p, i] for i in range(inputs.shape[1])] for p in range(patterns)]]
    for (weight, bias), name in zip(layers, names, strict=True):
        below = signals[-1]
        signals.append([[ACTIVATIONS[name](_sum([bias[o]] + [below[p][i] * weight[o][i]
                                                          for i in range(len(weight[o]))]))
                         for o in range(len(bias))] for p in range(patterns)])
    outputs = torch.stack([torch.stack(row, dim=-1) for row in signals[-1]], dim=1)
    upstream_tensor = output_gradient(outputs)
    upstream = [[upstream_tensor[:, p, o] for o in range(outputs.shape[2])]
                for p in range(patterns)]
    pieces: list[list[Tensor]] = []
    for index in range(len(layers) - 1, -1, -1):
        weight, bias = layers[index]
        delta = []
        for p in range(patterns):
            row = []
            for o in range(len(bias)):
                slope = derivative_from_output(names[index], signals[index + 1][p][o])
                row.append(upstream[p][o] if slope is None else upstream[p][o] * slope)
            delta.append(row)
        below = signals[index]
        weight_gradient = [_sum([delta[p][o] * below[p][i] for p in range(patterns)])
                           for o in range(len(bias)) for i in range(len(weight[o]))]
        bias_gradient = [_sum([delta[p][o] for p in range(patterns)]) for o in range(len(bias))]
        pieces.insert(0, weight_gradient + bias_gradient)
        if index > 0:
            upstream = [[_sum([delta[p][o] * weight[o][i] for o in range(len(bias))])
                         for i in range(len(weight[0]))] for p in range(patterns)]
    members = flat.shape[0]
    columns = [column.expand(members) for piece in pieces for column in piece]
    # [weights, K] transposed: each column of the gradient is contiguous, as in a
    # column-major ``flat`` (see ``column_major``)
    return outputs, torch.stack(columns, dim=0).t()


def column_major(rows: Tensor) -> Tensor:
    """``rows`` [K, weights] with the same values, laid out column by column (strides
    (1, K)): each weight of all members contiguous, so the compiled pass loads and stores
    whole vectors of members instead of one member's weight at a time."""
    return rows.t().contiguous().t()
