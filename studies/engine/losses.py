"""Losses per member: outputs [K, patterns, outputs] and targets → one value per member [K].

e = target − output. ``sse`` = Σe² (the lecture's E), ``half_sse`` = ½Σe² (the delta rule's
and R neuralnet's "sse"), ``mse`` = mean e², ``bce`` and ``cross_entropy`` averaged over
patterns. Each loss also gives ∂loss/∂output in closed form, used by the fast path that
back-propagates by hand (and checked against autograd in the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def _sum_last_two(values: Tensor) -> Tensor:
    """Σ over patterns and outputs, per member. A matrix-vector product with ones: the same
    sum, several times faster than ``sum(dim=(-2, -1))`` on small trailing dimensions."""
    flat = values.reshape(*values.shape[:-2], -1)
    ones = torch.ones(flat.shape[-1], dtype=values.dtype, device=values.device)
    return torch.matmul(flat, ones)


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable[[Tensor, Tensor], Tensor]
    output_gradient: Callable[[Tensor, Tensor], Tensor]
    """∂loss/∂output, same shape as the outputs."""
    needs_output: tuple[str, ...] = ()
    """Output activations this loss is defined for (empty: any)."""


def _sse(outputs: Tensor, targets: Tensor) -> Tensor:
    error = targets - outputs
    return _sum_last_two(error * error)


def _half_sse(outputs: Tensor, targets: Tensor) -> Tensor:
    return 0.5 * _sse(outputs, targets)


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return _sse(outputs, targets) / (outputs.shape[-2] * outputs.shape[-1])


def _bce(outputs: Tensor, targets: Tensor) -> Tensor:
    # Clamped like torch.nn.BCELoss: log terms are bounded below by −100.
    log_p = torch.clamp(torch.log(outputs), min=-100.0)
    log_q = torch.clamp(torch.log1p(-outputs), min=-100.0)
    per_unit = -(targets * log_p + (1.0 - targets) * log_q)
    return _sum_last_two(per_unit) / (outputs.shape[-2] * outputs.shape[-1])


def _bce_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    count = outputs.shape[-2] * outputs.shape[-1]
    return (outputs - targets) / (outputs * (1.0 - outputs)).clamp_min(1e-12) / count


def _cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return -(targets * torch.log_softmax(outputs, dim=-1)).sum(dim=(-2, -1)) / outputs.shape[-2]


def _cross_entropy_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    return (torch.softmax(outputs, dim=-1) - targets) / outputs.shape[-2]


def _sse_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    return 2.0 * (outputs - targets)


def _half_sse_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    return outputs - targets


LOSSES: dict[str, Loss] = {
    "sse": Loss("sse", _sse, _sse_gradient),
    "half_sse": Loss("half_sse", _half_sse, _half_sse_gradient),
    "mse": Loss("mse", _mse, lambda y, t: -2.0 * (t - y) / (y.shape[-2] * y.shape[-1])),
    "bce": Loss("bce", _bce, _bce_gradient, needs_output=("sigmoid",)),
    "cross_entropy": Loss("cross_entropy", _cross_entropy, _cross_entropy_gradient,
                          needs_output=("linear",)),
}
