"""Adam: steps from bias-corrected running moments of the gradient."""

from __future__ import annotations

from collections.abc import Sequence
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
    elementwise,
    require,
)


class Adam(Optimizer):
    r"""Adam (lecture Algorithm 3; Kingma & Ba, "Adam: A Method for Stochastic Optimization").

    Per weight, with m_0 = v_0 = 0 and t the number of steps taken so far including this one:

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \\
        \hat m = \frac{m}{1 - \beta_1^t}, \qquad \hat v = \frac{v}{1 - \beta_2^t}, \qquad
        w \leftarrow w - \alpha\, \frac{\hat m}{\sqrt{\hat v} + \varepsilon}

    Variant: Algorithm 1 of the paper with ε added to √v̂ (not to √v), no weight decay, no
    AMSGrad; this is ``torch.optim.Adam(lr=α, betas=(β₁, β₂), eps=ε)``, which it equals bit
    for bit in float64 because it computes the rule with the same op sequence:
    m ← lerp(m, g, 1 − β₁), and w ← w − (α / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε). The
    match is with torch's single-tensor kernel (``foreach=False``, its default on CPU); its
    foreach kernel, the default on CUDA, rounds some of these steps differently.

    Source: the lecture (seed/), Algorithm 3; Kingma & Ba (2014), arXiv:1412.6980;
    ALGORITHMS.md.

    Args:
        params: parameters or param groups.
        lr: step size α > 0.
        betas: decay rates (β₁, β₂) of the moment estimates, each in [0, 1).
        eps: ε > 0, added to √v̂.
        members: K for a population of K networks (every parameter has a leading member
            dimension of size K); ``lr``, ``betas[0]``, ``betas[1]`` and ``eps`` may then be
            tensors of shape [K].
    """

    def __init__(
        self,
        params: ParamsT,
        lr: Hyperparameter = 1e-3,
        betas: Sequence[Hyperparameter] = (0.9, 0.999),
        eps: Hyperparameter = 1e-8,
        *,
        members: int | None = None,
    ) -> None:
        members = check_members(members)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas!r} (allowed: a pair (beta1, beta2))")
        lr = as_hyperparameter("lr", lr, members)
        beta1 = as_hyperparameter("betas[0]", betas[0], members)
        beta2 = as_hyperparameter("betas[1]", betas[1], members)
        eps = as_hyperparameter("eps", eps, members)
        require(lr > 0, "lr", lr, "lr > 0")
        require((beta1 >= 0) & (beta1 < 1), "betas[0]", beta1, "0 <= betas[0] < 1")
        require((beta2 >= 0) & (beta2 < 1), "betas[1]", beta2, "0 <= betas[1] < 1")
        require(eps > 0, "eps", eps, "eps > 0")
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": (beta1, beta2),
            "eps": eps,
            "members": members,
        }
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
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    # t: the number of steps taken
                    state["step"] = 0
                    # m: running mean of the gradient (first moment)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    # v: running mean of the squared gradient (second moment)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, broadcast(1 - beta1, p))
                exp_avg_sq.mul_(broadcast(beta2, p))
                _population.addcmul_(exp_avg_sq, grad, grad, value=1 - beta2)
                step_size = elementwise(_step_size, lr, beta1, t)
                bias_correction2_sqrt = elementwise(_bias_correction2_sqrt, beta2, t)
                denom = (exp_avg_sq.sqrt() / broadcast(bias_correction2_sqrt, p)).add_(
                    broadcast(eps, p)
                )
                _population.addcdiv_(p, exp_avg, denom, value=-step_size)
        return loss


def _step_size(lr: float, beta1: float, t: float) -> float:
    """α / (1 − β₁ᵗ), in Python floats as torch computes it."""
    return lr / (1 - beta1**t)


def _bias_correction2_sqrt(beta2: float, t: float) -> float:
    """√(1 − β₂ᵗ), in Python floats as torch computes it (``** 0.5``, not ``math.sqrt``)."""
    return (1 - beta2**t) ** 0.5
