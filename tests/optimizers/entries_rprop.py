"""Database entries for the Rprop family and GRprop (see ``tests/optimizers/database.py``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from optimizers.grprop import GRprop
from optimizers.rprop import Rprop
from tests.optimizers.database import ErrorInput, OptimizerEntry
from tests.optimizers.reference_rprop import grprop_reference, rprop_reference

SCHEDULE: dict[str, Any] = {
    "delta0": 0.05,
    "delta_min": 1e-6,
    "delta_max": 50.0,
    "eta_minus": 0.5,
    "eta_plus": 1.2,
}
"""Explicit values (delta0 off its default), so that the references need no defaults."""

SCHEDULE_PER_MEMBER: dict[str, tuple[float, float]] = {
    "delta0": (0.02, 0.2),
    "delta_min": (1e-8, 1e-5),
    "delta_max": (1.0, 50.0),
    "eta_minus": (0.3, 0.7),
    "eta_plus": (1.1, 1.5),
}
"""Any draw from these ranges satisfies 0 <= delta_min < delta0 <= delta_max jointly."""


def _error(kwargs: dict[str, Any], name: str, value: str, allowed: str) -> ErrorInput:
    """The exact message ``Invalid NAME: VALUE (allowed: ALLOWED)``, as an anchored regex."""
    message = f"Invalid {name}: {value} (allowed: {allowed})"
    return ErrorInput(kwargs, f"^{re.escape(message)}$")


SCHEDULE_ERRORS = [
    _error({"eta_minus": 0.0}, "eta_minus", "0.0", "0 < eta_minus < 1"),
    _error({"eta_minus": 1.0}, "eta_minus", "1.0", "0 < eta_minus < 1"),
    _error({"eta_plus": 1.0}, "eta_plus", "1.0", "eta_plus > 1"),
    _error({"delta0": 0.0, "delta_min": 0.0}, "delta0", "0.0", "delta0 > 0"),
    _error({"delta_min": -1e-6}, "delta_min", "-1e-06", "0 <= delta_min < delta0"),
    _error({"delta_min": 0.05}, "delta_min", "0.05", "0 <= delta_min < delta0"),
    _error({"delta_max": 0.04}, "delta_max", "0.04", "delta_max >= delta0"),
    _error(
        {"members": 2, "eta_plus": torch.tensor([1.2, 0.9], dtype=torch.float64)},
        "eta_plus",
        "tensor [1.2, 0.9]",
        "eta_plus > 1",
    ),
    _error({"members": 0}, "members", "0", "None or an integer >= 1"),
]


def _torch_rprop(params: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.Rprop(
        params,
        lr=SCHEDULE["delta0"],
        etas=(SCHEDULE["eta_minus"], SCHEDULE["eta_plus"]),
        step_sizes=(SCHEDULE["delta_min"], SCHEDULE["delta_max"]),
    )


def _rprop_entry(variant: str) -> OptimizerEntry:
    return OptimizerEntry(
        name=f"rprop-{variant}",
        optimizer=Rprop,
        kwargs={"variant": variant, **SCHEDULE},
        torch_reference=_torch_rprop if variant == "iRprop-" else None,
        reference_loop=rprop_reference,
        error_inputs=[
            _error(
                {"variant": "Rprop"},
                "variant",
                "'Rprop'",
                "'Rprop+', 'Rprop-', 'iRprop+', 'iRprop-'",
            ),
            *SCHEDULE_ERRORS,
        ],
        needs_loss=variant == "iRprop+",
        per_member=SCHEDULE_PER_MEMBER,
        per_member_bitwise=True,
    )


GRPROP_ERRORS = [
    _error({"variant": "SAG"}, "variant", "'SAG'", "'sag', 'slr'"),
    _error({"line_search": "armijo"}, "line_search", "'armijo'", "'none', 'wolfe'"),
    _error({"delta": 0.0}, "delta", "0.0", "0 < delta < inf"),
    _error({"sigma1": 0.95}, "sigma1", "0.95", "0 < sigma1 < sigma2"),
    _error({"sigma2": 1.0}, "sigma2", "1.0", "sigma1 < sigma2 < 1"),
    _error({"max_line_search_evals": 0}, "max_line_search_evals", "0", "an integer >= 1"),
    *SCHEDULE_ERRORS,
]


def _grprop_entry(variant: str, line_search: str) -> OptimizerEntry:
    wolfe = line_search == "wolfe"
    return OptimizerEntry(
        name=f"grprop-{variant}" + ("-wolfe" if wolfe else ""),
        optimizer=GRprop,
        kwargs={"variant": variant, **SCHEDULE, "delta": 1e-6, "line_search": line_search},
        reference_loop=None if wolfe else grprop_reference,
        error_inputs=GRPROP_ERRORS,
        needs_loss=wolfe,
        per_member={**SCHEDULE_PER_MEMBER, "delta": (1e-7, 1e-4)},
        per_member_bitwise=True,
    )


ENTRIES: list[OptimizerEntry] = [
    *(_rprop_entry(variant) for variant in ("Rprop+", "Rprop-", "iRprop+", "iRprop-")),
    _grprop_entry("sag", "none"),
    _grprop_entry("slr", "none"),
    _grprop_entry("sag", "wolfe"),
]
