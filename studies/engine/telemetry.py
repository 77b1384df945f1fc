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
    """Per group, the ``QUANTILES`` of the finite elements of its rows of ``values`` (NaN for
    a group without any); of an even subsample of a group's rows where it has more than
    ``_SAMPLE`` elements.

    The elements of the groups that have rows are laid out in a table, a row per group,
    padded with NaN (non-finite elements are NaN too), and ``nanquantile`` takes each row's
    quantiles."""
    width = values[0].numel() if values.shape[0] else 1
    order = torch.argsort(group_of_rows, stable=True)
    grouped = group_of_rows[order]
    per_row = values.reshape(values.shape[0], -1)[order].double()
    row_counts = torch.bincount(grouped, minlength=groups)
    every = torch.clamp(-(-(row_counts * width) // _SAMPLE), min=1)
    rank = (torch.arange(grouped.numel(), device=grouped.device)
            - (torch.cumsum(row_counts, 0) - row_counts)[grouped])
    keep = rank % every[grouped] == 0
    per_row, grouped = per_row[keep], grouped[keep]
    rank = rank[keep] // every[grouped]
    elements = per_row.reshape(-1)
    elements = torch.where(torch.isfinite(elements), elements, torch.nan)
    slot = torch.cumsum(row_counts > 0, 0) - 1  # a group's row in the table
    columns = torch.arange(width, device=elements.device)
    offset = (rank.unsqueeze(1) * width + columns).reshape(-1)
    kept_rows = torch.bincount(grouped, minlength=groups)
    present = (row_counts > 0).nonzero().squeeze(1)
    table = torch.full((present.numel(), max(1, int(kept_rows.max()) * width)), torch.nan,
                       dtype=torch.float64, device=elements.device)
    table[slot[grouped].repeat_interleave(width), offset] = elements
    quantiles = torch.tensor(QUANTILES, dtype=torch.float64, device=table.device)
    points = torch.full((len(QUANTILES), groups), torch.nan, dtype=torch.float64,
                        device=table.device)
    points[:, present] = torch.nanquantile(table, quantiles, dim=1)
    return {f"{name}_p{round(q * 100)}": points[i] for i, q in enumerate(QUANTILES)}
