"""RMSProp: divide the gradient by a running root mean square of its recent values."""

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


class RMSProp(Optimizer):
    r"""RMSProp (lecture Algorithm 2; Hinton, Neural Networks for Machine Learning, lecture 6e).

    Per weight, with θ a running mean of the squared gradient (θ_0 = 0):

    .. math::
        \theta \leftarrow \alpha\,\theta + (1 - \alpha)\, g^2, \qquad
        \Delta w = -\lambda\, \frac{g}{\sqrt{\theta} + \varepsilon}, \qquad
        w \leftarrow w + \Delta w

    Variant: uncentred, no momentum, no weight decay, ε added *after* the square root; this
    is ``torch.optim.RMSprop(lr=λ, alpha=α, eps=ε)``, which it equals bit for bit in float64
    (same op sequence). α = 0.9 is Hinton's value (torch's default is 0.99).

    Source: the lecture (seed/), Algorithm 2; Tieleman & Hinton, lecture 6e (2012);
    ALGORITHMS.md.

    Args:
        params: parameters or param groups.
        lr: learning rate λ > 0.
        alpha: decay α of the running mean, 0 ≤ α < 1.
        eps: ε > 0, added to √θ.
        members: K for a population of K networks (every parameter has a leading member
            dimension of size K); ``lr``, ``alpha`` and ``eps`` may then be tensors of shape [K].
    """

    def __init__(
        self,
        params: ParamsT,
        lr: Hyperparameter = 0.01,
        alpha: Hyperparameter = 0.9,
        eps: Hyperparameter = 1e-8,
        *,
        members: int | None = None,
    ) -> None:
        members = check_members(members)
        lr = as_hyperparameter("lr", lr, members)
        alpha = as_hyperparameter("alpha", alpha, members)
        eps = as_hyperparameter("eps", eps, members)
        require(lr > 0, "lr", lr, "lr > 0")
        require((alpha >= 0) & (alpha < 1), "alpha", alpha, "0 <= alpha < 1")
        require(eps > 0, "eps", eps, "eps > 0")
        defaults: dict[str, Any] = {"lr": lr, "alpha": alpha, "eps": eps, "members": members}
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
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    # θ: running mean of the squared gradient
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                square_avg = state["square_avg"]
                square_avg.mul_(broadcast(alpha, p))
                _population.addcmul_(square_avg, grad, grad, value=1 - alpha)
                avg = square_avg.sqrt().add_(broadcast(eps, p))
                _population.addcdiv_(p, grad, avg, value=-lr)
        return loss
