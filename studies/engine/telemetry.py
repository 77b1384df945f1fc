"""Optimizer-state telemetry: what the optimizer's state says about a population at one
epoch, over the rows still training. Rprop and GRprop: the step sizes Δ (quantiles, the
fraction at Δmin and at Δmax) and the sign-change rate of the last step; Adam: the effective
step |Δw| = α/(1 − β₁ᵗ) · |m| / (√v / √(1 − β₂ᵗ) + ε) it applied last."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Optimizer

from optimizers import Adam, GRprop, Rprop
from optimizers._population import Hyperparameter

QUANTILES = (0.1, 0.5, 0.9)
_SAMPLE = 1_000_000
"""torch.quantile takes at most 16M values; beyond this many, an even subsample is used."""


def enable(optimizer: Optimizer) -> None:
    """Ask the optimizer to keep what the telemetry reads (Rprop's sign changes)."""
    if isinstance(optimizer, Rprop | GRprop):
        optimizer.record_sign_changes = True


def telemetry(optimizer: Optimizer, rows: Tensor) -> dict[str, float]:
    """The optimizer's telemetry over ``rows`` of the population ({} when it has none yet)."""
    flat = optimizer.param_groups[0]["params"][0]
    group = optimizer.param_groups[0]
    state = optimizer.state.get(flat, {})
    if rows.numel() == 0 or not state:
        return {}
    if isinstance(optimizer, Rprop | GRprop):
        return _step_size_telemetry(state, group, rows)
    if isinstance(optimizer, Adam):
        return _quantiles("effective_step", _adam_step(state, group).index_select(0, rows))
    return {}


def _step_size_telemetry(state: dict[str, Tensor], group: dict[str, object],
                         rows: Tensor) -> dict[str, float]:
    step_size = state["step_size"]
    low = _per_row(group["delta_min"], step_size)  # type: ignore[arg-type]
    high = _per_row(group["delta_max"], step_size)  # type: ignore[arg-type]
    step = step_size.index_select(0, rows)
    values = _quantiles("step_size", step)
    values["step_size_frac_at_min"] = _fraction(step <= _rows(low, rows))
    values["step_size_frac_at_max"] = _fraction(step >= _rows(high, rows))
    if "sign_changed" in state:
        values["sign_change_rate"] = _fraction(state["sign_changed"].index_select(0, rows))
    return values


def _adam_step(state: dict[str, Tensor], group: dict[str, object]) -> Tensor:
    exp_avg, exp_avg_sq, t = state["exp_avg"], state["exp_avg_sq"], float(state["step"])
    lr = _per_row(group["lr"], exp_avg)  # type: ignore[arg-type]
    betas: tuple[Hyperparameter, Hyperparameter] = group["betas"]  # type: ignore[assignment]
    beta1, beta2 = betas
    eps = _per_row(group["eps"], exp_avg)  # type: ignore[arg-type]
    b1, b2 = _per_row(beta1, exp_avg), _per_row(beta2, exp_avg)
    step_size = lr / (1 - b1**t)
    denom = exp_avg_sq.sqrt() / (1 - b2**t).sqrt() + eps
    return (step_size * exp_avg.abs() / denom).to(exp_avg.dtype)


def _per_row(value: Hyperparameter, like: Tensor) -> Tensor:
    """A hyperparameter as a [rows, 1] float64 tensor (or a 0-d one when shared)."""
    if isinstance(value, Tensor):
        return value.to(device=like.device, dtype=torch.float64).reshape(-1, 1)
    return torch.tensor(float(value), dtype=torch.float64, device=like.device)


def _rows(value: Tensor, rows: Tensor) -> Tensor:
    return value.index_select(0, rows) if value.dim() else value


def _fraction(mask: Tensor) -> float:
    return float(mask.double().mean())


def _quantiles(name: str, values: Tensor) -> dict[str, float]:
    flat = values.reshape(-1).double()
    flat = flat[torch.isfinite(flat)]
    if flat.numel() == 0:
        return {}
    if flat.numel() > _SAMPLE:
        flat = flat[:: -(-flat.numel() // _SAMPLE)]
    points = torch.quantile(flat, torch.tensor(QUANTILES, dtype=flat.dtype, device=flat.device))
    return {f"{name}_p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, points, strict=True)}
