"""Database entries for the gradient-following optimizers: steepest descent, the perceptron
rule, RMSProp and Adam. Reference loops are written from ALGORITHMS.md, not from the code."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from optimizers import Adam, PerceptronRule, RMSProp, SteepestDescent
from tests.optimizers.database import ErrorInput, OptimizerEntry, ReferenceLoop

Gradient = Callable[[list[float]], tuple[float, list[float]]]


def steepest_descent_loop(kwargs: dict[str, Any]) -> ReferenceLoop:
    """w_{k+1} = w_k − η∇E(w_k) + m(w_k − w_{k−1}), with w_{−1} = w_0."""
    lr, m = kwargs["lr"], kwargs.get("momentum", 0.0)

    def loop(w0: list[float], f: Gradient, steps: int) -> list[list[float]]:
        w, w_prev, out = list(w0), list(w0), []
        for _ in range(steps):
            _, g = f(w)
            w, w_prev = (
                [wi - lr * gi + m * (wi - pi) for wi, gi, pi in zip(w, g, w_prev, strict=True)],
                w,
            )
            out.append(w)
        return out

    return loop


def perceptron_rule_loop(kwargs: dict[str, Any]) -> ReferenceLoop:
    """wᵢ ← wᵢ + α·xᵢ·e, where xᵢ·e = −gᵢ for ½Σe² with a straight-through hard limiter."""
    alpha = kwargs["lr"]

    def loop(w0: list[float], f: Gradient, steps: int) -> list[list[float]]:
        w, out = list(w0), []
        for _ in range(steps):
            _, g = f(w)
            x_times_e = [-gi for gi in g]
            w = [wi + alpha * xe for wi, xe in zip(w, x_times_e, strict=True)]
            out.append(w)
        return out

    return loop


def rmsprop_loop(kwargs: dict[str, Any]) -> ReferenceLoop:
    """θ ← αθ + (1−α)g²; Δw = −λ·g/(√θ + ε)."""
    lam, alpha, eps = kwargs["lr"], kwargs["alpha"], kwargs["eps"]

    def loop(w0: list[float], f: Gradient, steps: int) -> list[list[float]]:
        w, theta, out = list(w0), [0.0] * len(w0), []
        for _ in range(steps):
            _, g = f(w)
            theta = [alpha * ti + (1 - alpha) * gi**2 for ti, gi in zip(theta, g, strict=True)]
            w = [
                wi - lam * gi / (math.sqrt(ti) + eps)
                for wi, gi, ti in zip(w, g, theta, strict=True)
            ]
            out.append(w)
        return out

    return loop


def adam_loop(kwargs: dict[str, Any]) -> ReferenceLoop:
    """Kingma & Ba: m, v running moments; m̂, v̂ bias corrected; w −= α·m̂/(√v̂ + ε)."""
    alpha, (beta1, beta2), eps = kwargs["lr"], kwargs["betas"], kwargs["eps"]

    def loop(w0: list[float], f: Gradient, steps: int) -> list[list[float]]:
        w, m, v, out = list(w0), [0.0] * len(w0), [0.0] * len(w0), []
        for t in range(1, steps + 1):
            _, g = f(w)
            m = [beta1 * mi + (1 - beta1) * gi for mi, gi in zip(m, g, strict=True)]
            v = [beta2 * vi + (1 - beta2) * gi**2 for vi, gi in zip(v, g, strict=True)]
            m_hat = [mi / (1 - beta1**t) for mi in m]
            v_hat = [vi / (1 - beta2**t) for vi in v]
            w = [
                wi - alpha * mh / (math.sqrt(vh) + eps)
                for wi, mh, vh in zip(w, m_hat, v_hat, strict=True)
            ]
            out.append(w)
        return out

    return loop


def error(kwargs: dict[str, Any], message: str) -> ErrorInput:
    """An error input whose message must match exactly."""
    return ErrorInput(kwargs, re.escape(message))


def common_errors(name: str, allowed: str, bad: float, good: float) -> list[ErrorInput]:
    """The errors every hyperparameter ``name`` shares: a bad float, a bad member, a bad shape."""
    return [
        error({name: bad}, f"Invalid {name}: {bad!r} (allowed: {allowed})"),
        error(
            {name: torch.tensor([good, bad], dtype=torch.float64), "members": 2},
            f"Invalid {name}: tensor {[good, bad]!r} (allowed: {allowed})",
        ),
        error(
            {name: torch.tensor([good, good, good], dtype=torch.float64), "members": 2},
            f"Invalid {name}: per-member values must have shape (2,); got (3,)",
        ),
        error(
            {name: torch.tensor([good, good], dtype=torch.float64)},
            f"Invalid {name}: a tensor needs members=K (per-member values); got shape (2,) "
            "with members=None",
        ),
    ]


LR_ERRORS = [
    *common_errors("lr", "lr > 0", -0.25, 0.5),
    error({"lr": 0.0}, "Invalid lr: 0.0 (allowed: lr > 0)"),
    error({"lr": math.nan}, "Invalid lr: nan (allowed: lr > 0)"),
    error({"lr": "0.1"}, "Invalid lr: '0.1' (allowed: a number or a tensor of shape [K])"),
]
MEMBERS_ERRORS = [
    error({"members": 0}, "Invalid members: 0 (allowed: None or an integer >= 1)"),
    error({"members": True}, "Invalid members: True (allowed: None or an integer >= 1)"),
]
MOMENTUM_ERRORS = [
    *common_errors("momentum", "0 <= momentum < 1", 1.0, 0.5),
    error({"momentum": -0.5}, "Invalid momentum: -0.5 (allowed: 0 <= momentum < 1)"),
]
EPS_ERRORS = [
    *common_errors("eps", "eps > 0", 0.0, 1e-8),
    error({"eps": -1e-8}, "Invalid eps: -1e-08 (allowed: eps > 0)"),
]

ENTRIES = [
    OptimizerEntry(
        name="steepest_descent",
        optimizer=SteepestDescent,
        kwargs={"lr": 0.5},
        torch_reference=lambda params: torch.optim.SGD(params, lr=0.5, foreach=False),
        reference_loop=steepest_descent_loop,
        error_inputs=[*LR_ERRORS, *MOMENTUM_ERRORS, *MEMBERS_ERRORS],
        per_member={"lr": (0.2, 0.8)},
        per_member_bitwise=True,
    ),
    OptimizerEntry(
        name="steepest_descent-momentum",
        optimizer=SteepestDescent,
        kwargs={"lr": 0.5, "momentum": 0.7},
        torch_reference=lambda params: torch.optim.SGD(
            params, lr=0.5, momentum=0.7, dampening=0, foreach=False
        ),
        reference_loop=steepest_descent_loop,
        error_inputs=[*LR_ERRORS, *MOMENTUM_ERRORS, *MEMBERS_ERRORS],
        per_member={"lr": (0.2, 0.8), "momentum": (0.3, 0.9)},
        per_member_bitwise=True,
    ),
    OptimizerEntry(
        name="perceptron_rule",
        optimizer=PerceptronRule,
        kwargs={"lr": 0.1},
        torch_reference=lambda params: torch.optim.SGD(params, lr=0.1, foreach=False),
        reference_loop=perceptron_rule_loop,
        error_inputs=[*LR_ERRORS, *MEMBERS_ERRORS],
        per_member={"lr": (0.05, 0.5)},
        per_member_bitwise=True,
    ),
    OptimizerEntry(
        name="rmsprop",
        optimizer=RMSProp,
        kwargs={"lr": 0.01, "alpha": 0.9, "eps": 1e-8},
        torch_reference=lambda params: torch.optim.RMSprop(
            params, lr=0.01, alpha=0.9, eps=1e-8, foreach=False
        ),
        reference_loop=rmsprop_loop,
        error_inputs=[
            *LR_ERRORS,
            *common_errors("alpha", "0 <= alpha < 1", 1.0, 0.9),
            error({"alpha": -0.1}, "Invalid alpha: -0.1 (allowed: 0 <= alpha < 1)"),
            *EPS_ERRORS,
            *MEMBERS_ERRORS,
        ],
        per_member={"lr": (0.005, 0.05), "alpha": (0.8, 0.99), "eps": (1e-8, 1e-6)},
        per_member_bitwise=True,
    ),
    OptimizerEntry(
        name="adam",
        optimizer=Adam,
        kwargs={"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8},
        torch_reference=lambda params: torch.optim.Adam(
            params, lr=0.01, betas=(0.9, 0.999), eps=1e-8, foreach=False
        ),
        reference_loop=adam_loop,
        error_inputs=[
            *LR_ERRORS,
            error({"betas": (1.0, 0.999)}, "Invalid betas[0]: 1.0 (allowed: 0 <= betas[0] < 1)"),
            error({"betas": (-0.1, 0.999)}, "Invalid betas[0]: -0.1 (allowed: 0 <= betas[0] < 1)"),
            error({"betas": (0.9, 1.5)}, "Invalid betas[1]: 1.5 (allowed: 0 <= betas[1] < 1)"),
            error(
                {"betas": (0.9, torch.tensor([0.999, 1.0], dtype=torch.float64)), "members": 2},
                "Invalid betas[1]: tensor [0.999, 1.0] (allowed: 0 <= betas[1] < 1)",
            ),
            error({"betas": (0.9,)}, "Invalid betas: (0.9,) (allowed: a pair (beta1, beta2))"),
            error({"betas": 0.9}, "Invalid betas: 0.9 (allowed: a pair (beta1, beta2))"),
            *EPS_ERRORS,
            *MEMBERS_ERRORS,
        ],
        per_member={
            "lr": (0.005, 0.02),
            "betas[0]": (0.8, 0.95),
            "betas[1]": (0.99, 0.9999),
            "eps": (1e-8, 1e-6),
        },
        per_member_bitwise=True,
    ),
]
