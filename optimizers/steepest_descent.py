"""Steepest descent with momentum: w ← w − η∇E(w) + m·(previous change of w)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from optimizers import _population
from optimizers._population import (
    Closure,
    Hyperparameter,
    as_hyperparameter,
    broadcast,
    check_member_dimension,
    check_members,
    require,
)


class SteepestDescent(Optimizer):
    r"""Steepest (gradient) descent with momentum (lecture "Gradient-descent variants").

    .. math::
        w_{k+1} = w_k - \eta \nabla E(w_k) + m (w_k - w_{k-1}), \qquad w_{-1} = w_0

    Variant: heavy-ball momentum with fixed η and m, computed as
    ``torch.optim.SGD(lr=η, momentum=m, dampening=0)`` computes it, so that a float64 run
    equals torch's bit for bit: a buffer b_0 = ∇E(w_0), b_k = m·b_{k−1} + ∇E(w_k), and
    w_{k+1} = w_k − η·b_k. Since w_k − w_{k−1} = −η·b_{k−1}, this is the rule above. m = 0 is
    plain gradient descent (no buffer is kept). Online, batch or mini-batch learning is the
    caller's choice: the rule uses whatever gradient the closure / backward produced (one
    pattern, a subset, or the whole set).

    Source: the lecture (seed/), "Gradient-descent variants"; ALGORITHMS.md.

    Args:
        params: parameters or param groups.
        lr: learning rate η > 0.
        momentum: momentum factor m, 0 ≤ m < 1.
        members: K for a population of K networks (every parameter has a leading member
            dimension of size K); ``lr`` and ``momentum`` may then be tensors of shape [K].
    """

    def __init__(
        self,
        params: ParamsT,
        lr: Hyperparameter,
        momentum: Hyperparameter = 0.0,
        *,
        members: int | None = None,
    ) -> None:
        members = check_members(members)
        lr = as_hyperparameter("lr", lr, members)
        momentum = as_hyperparameter("momentum", momentum, members)
        require(lr > 0, "lr", lr, "lr > 0")
        require((momentum >= 0) & (momentum < 1), "momentum", momentum, "0 <= momentum < 1")
        defaults: dict[str, Any] = {"lr": lr, "momentum": momentum, "members": members}
        super().__init__(params, defaults)
        for group in self.param_groups:
            check_member_dimension(group["params"], group["members"])

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = p.grad
                if isinstance(momentum, Tensor) or momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        # b: m-weighted sum of the gradients so far, w_k − w_{k−1} = −η·b_{k−1}
                        state["momentum_buffer"] = direction.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(broadcast(momentum, p)).add_(direction)
                    direction = state["momentum_buffer"]
                _population.add_(p, direction, alpha=-lr)
        return loss
