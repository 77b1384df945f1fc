"""A trial's configuration and results as MLflow params and metrics: keys MLflow accepts,
values it can store, curves downsampled so the UI stays fast."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param

CURVE_POINTS = 100
"""Per-epoch curves are downsampled to at most this many points (and flat stretches to their
ends, ``bends``), so the UI stays fast and a trial's run is written in milliseconds (the full
curves are in its ``history.npz``)."""
TELEMETRY_GROUP = "optimizer/"
"""Optimizer-state telemetry metrics are named ``optimizer/<quantity>`` (one UI section)."""
_PARAM_LIMIT = 6000  # MLflow's limit on a parameter value's length


def mlflow_key(name: str) -> str:
    """A name MLflow accepts as a param or metric key: ``betas[0]`` becomes ``betas.0``
    (MLflow allows only alphanumerics, ``_ - . : /`` and spaces)."""
    return re.sub(r"[^\w\-.:/ ]", "_", re.sub(r"\[(\d+)\]", r".\1", name))


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    else:
        into[prefix] = json.dumps(value) if isinstance(value, list) else str(value)


def params_of(config: dict[str, Any]) -> list[Param]:
    """A trial's full configuration as MLflow params (``optimizer.lr``, ``stop.max_epochs``)."""
    flat: dict[str, str] = {}
    _flatten("", config, flat)
    return [Param(mlflow_key(key), text[:_PARAM_LIMIT]) for key, text in sorted(flat.items())]


def unlogged(params: list[Param], logged: dict[str, str]) -> list[Param]:
    """The ``params`` a run has not logged yet (MLflow refuses to change a logged value,
    and a value read back from Optuna may be written differently: ``0.0`` for ``0``)."""
    return [param for param in params if param.key not in logged]


def metrics_of(values: dict[str, Any], prefix: str = "") -> list[Metric]:
    """The finite numbers of ``values`` as metrics at step 0."""
    now = int(time.time() * 1000)
    return [Metric(mlflow_key(prefix + key), float(value), now, 0)
            for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)]


CURVE_KEY = "frac_converged"
"""A key every logged curve has (a run with it has its curves)."""


def row_quantiles(rows: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Each row's ``quantiles`` of its values that are not NaN (each row has one at least),
    interpolated linearly as ``np.nanquantile`` does, for all rows at once (``nanquantile``
    along an axis goes row by row in Python): [rows, quantiles]."""
    ordered = np.sort(rows, axis=1)  # NaN sorts last
    last = np.sum(~np.isnan(rows), axis=1, keepdims=True) - 1
    positions = np.asarray(quantiles)[None, :] * last
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, last)
    low = np.take_along_axis(ordered, below, axis=1)
    high = np.take_along_axis(ordered, above, axis=1)
    return low + (high - low) * (positions - below)


def bends(values: np.ndarray) -> np.ndarray:
    """Which points a line through all of ``values`` needs: both ends, and every point whose
    value differs from a neighbour's. A flat stretch keeps its two ends, so the line drawn
    through the points kept is the same (MLflow's charts draw lines between points); a
    trial's curves are mostly flat stretches (members that stopped keep their last value),
    and leaving those points out writes about a third of the rows."""
    needed = np.ones(len(values), dtype=bool)
    if len(values) > 2:
        same = values[1:] == values[:-1]
        needed[1:-1] = ~(same[:-1] & same[1:])
    return needed


@dataclass(frozen=True)
class Curves:
    """A trial's per-epoch curves: ``series[key][i]`` at epoch ``steps[i]``, NaN (or any
    value that is not finite) where that curve has no value (nothing is logged there);
    every point logged at ``timestamp``."""

    steps: np.ndarray
    series: dict[str, np.ndarray]
    timestamp: int

    def logged(self) -> Iterator[tuple[str, list[float], list[int]]]:
        """Each curve's logged points as (key, values, steps), in step order: those the line
        through all of them needs (``bends``)."""
        for key, values in self.series.items():
            logged = np.isfinite(values)
            values, steps = values[logged], self.steps[logged]
            needed = bends(values)
            yield key, values[needed].tolist(), steps[needed].tolist()

    def points(self) -> Iterator[tuple[str, float, int]]:
        """Every logged point as (key, value, step), each curve in step order."""
        for key, values, steps in self.logged():
            yield from ((key, value, step) for value, step in zip(values, steps, strict=True))

    def metrics(self) -> list[Metric]:
        return [Metric(key, value, self.timestamp, step) for key, value, step in self.points()]


def curves(history: dict[str, np.ndarray], epochs: list[int], converged: list[bool],
           telemetry: dict[str, np.ndarray]) -> Curves:
    """Per-epoch loss median and 10/90% quantiles over seeds, the fraction converged and the
    optimizer telemetry, at most ``CURVE_POINTS`` epochs of them (step = epoch)."""
    recorded, loss = history["epochs"], history["loss"]
    now = int(time.time() * 1000)
    if loss.size == 0:
        return Curves(np.zeros(0, dtype=np.int64), {}, now)
    chosen = np.unique(np.linspace(0, len(recorded) - 1,
                                   min(CURVE_POINTS, len(recorded))).round().astype(int))
    reached = np.sort([e if c else np.inf for e, c in zip(epochs, converged, strict=True)])
    at = recorded[chosen]
    series = {CURVE_KEY: np.searchsorted(reached, at, side="right") / max(1, len(reached))}
    picked = loss[chosen].astype(np.float64)
    picked[~np.isfinite(picked)] = np.nan
    has_loss = ~np.all(np.isnan(picked), axis=1)
    if has_loss.any():
        spread = np.full((len(chosen), 3), np.nan)
        spread[has_loss] = row_quantiles(picked[has_loss], (0.5, 0.1, 0.9))
        series.update(loss_median=spread[:, 0], loss_p10=spread[:, 1], loss_p90=spread[:, 2])
    for name, values in telemetry.items():
        value = np.asarray(values, dtype=np.float64)[chosen]
        series[TELEMETRY_GROUP + name] = np.where(np.isfinite(value), value, np.nan)
    return Curves(at.astype(np.int64), series, now)
