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
    return by_group(optimizer, rows, torch.zeros_like(rows), 1)[0]


def by_group(optimizer: Optimizer, rows: Tensor, group_of_rows: Tensor,
             groups: int) -> list[dict[str, float]]:
    """The telemetry of each of ``groups`` groups over its rows (``group_of_rows[i]`` is the
    group of ``rows[i]``; {} for a group without rows), all groups at once: one read from
    the device for a record, where a group at a time took a dozen reads per group."""
    flat = optimizer.param_groups[0]["params"][0]
    param_group = optimizer.param_groups[0]
    state = optimizer.state.get(flat, {})
    empty: list[dict[str, float]] = [{} for _ in range(groups)]
    if rows.numel() == 0 or not state:
        return empty
    columns: dict[str, Tensor] = {}  # name -> [groups] values, NaN where there is none
    if isinstance(optimizer, Rprop | GRprop):
        step_size = state["step_size"]
        step = step_size.index_select(0, rows)
        columns.update(_quantiles("step_size", step, group_of_rows, groups))
        low = _rows(_per_row(param_group["delta_min"], step_size), rows)
        high = _rows(_per_row(param_group["delta_max"], step_size), rows)
        columns["step_size_frac_at_min"] = _fraction(step <= low, group_of_rows, groups)
        columns["step_size_frac_at_max"] = _fraction(step >= high, group_of_rows, groups)
        if "sign_changed" in state:
            columns["sign_change_rate"] = _fraction(state["sign_changed"].index_select(0, rows),
                                                    group_of_rows, groups)
    elif isinstance(optimizer, Adam):
        columns.update(_quantiles("effective_step",
                                  _adam_step(state, param_group).index_select(0, rows),
                                  group_of_rows, groups))
    if not columns:
        return empty
    names = list(columns)
    table = torch.stack([columns[name].double() for name in names], dim=1).tolist()
    return [{name: value for name, value in zip(names, values, strict=True)
             if value == value}  # NaN: no value
            for values in table]


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


def _fraction(mask: Tensor, group_of_rows: Tensor, groups: int) -> Tensor:
    """Per group, the fraction of its elements where ``mask`` ([rows, ...]) holds."""
    per_row = mask.reshape(mask.shape[0], -1)
    hits = torch.zeros(groups, dtype=torch.float64, device=mask.device).index_add_(
        0, group_of_rows, per_row.sum(dim=1, dtype=torch.float64))
    counts = torch.bincount(group_of_rows, minlength=groups).to(torch.float64)
    return hits / (counts * per_row.shape[1])


def _quantiles(name: str, values: Tensor, group_of_rows: Tensor,
               groups: int) -> dict[str, Tensor]:
    """Per group, the ``QUANTILES`` of the finite elements of its rows of ``values``.

    The groups' elements are laid out in a [groups, most elements] table padded with NaN
    (non-finite elements are NaN too), and ``nanquantile`` takes each row's quantiles."""
    per_row = values.reshape(values.shape[0], -1).double()
    if per_row.numel() > _SAMPLE:  # an even subsample of the rows
        every = -(-per_row.numel() // _SAMPLE)
        per_row, group_of_rows = per_row[::every], group_of_rows[::every]
    order = torch.argsort(group_of_rows, stable=True)
    grouped = group_of_rows[order]
    elements = per_row[order].reshape(-1)
    elements = torch.where(torch.isfinite(elements), elements, torch.nan)
    width = per_row.shape[1]
    counts = torch.bincount(grouped, minlength=groups) * width
    starts = torch.cumsum(counts, 0) - counts
    group_of_element = grouped.repeat_interleave(width)
    offset = torch.arange(elements.numel(), device=elements.device) - starts[group_of_element]
    table = torch.full((groups, max(1, int(counts.max()))), torch.nan, dtype=torch.float64,
                       device=elements.device)
    table[group_of_element, offset] = elements
    points = torch.nanquantile(table, torch.tensor(QUANTILES, dtype=torch.float64,
                                                   device=table.device), dim=1)
    return {f"{name}_p{round(q * 100)}": points[i] for i, q in enumerate(QUANTILES)}
