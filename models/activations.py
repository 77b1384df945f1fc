"""Activation functions by name, including the perceptron's hard limiter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class _HardLimiter(torch.autograd.Function):
    """step(X) = 1 if X ≥ 0 else 0; its derivative is taken as 1 (straight-through), so that
    gradient descent on ½e² through it is exactly Rosenblatt's rule w ← w + α·x·e."""

    @staticmethod
    def forward(ctx: Any, net: Tensor) -> Tensor:
        return (net >= 0).to(net.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        return grad_output


def step(net: Tensor) -> Tensor:
    """The hard limiter with a straight-through derivative."""
    result: Tensor = _HardLimiter.apply(net)
    return result


def _linear(net: Tensor) -> Tensor:
    return net


def derivative_from_output(name: str, output: Tensor) -> Tensor | None:
    """f'(net) expressed through f(net) (None where it is 1: linear, and the hard limiter's
    straight-through derivative)."""
    if name == "sigmoid":
        return output * (1.0 - output)
    if name == "tanh":
        return 1.0 - output * output
    if name == "relu":
        return (output > 0).to(output.dtype)
    return None


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": _linear,
    "step": step,
}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear", "tanh", "step")
