"""A trial's configuration and results as MLflow params and metrics: keys MLflow accepts,
values it can store, curves downsampled so the UI stays fast."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param

CURVE_POINTS = 100
"""Per-epoch curves are downsampled to at most this many points, so the UI stays fast and a
trial's run is written in milliseconds (the full curves are in its ``history.npz``)."""
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


def metrics_of(values: dict[str, Any], prefix: str = "") -> list[Metric]:
    """The finite numbers of ``values`` as metrics at step 0."""
    now = int(time.time() * 1000)
    return [Metric(mlflow_key(prefix + key), float(value), now, 0)
            for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)]


CURVE_KEY = "frac_converged"
"""A key every logged curve has (a run with it has its curves)."""


def curves(history: dict[str, np.ndarray], epochs: list[int], converged: list[bool],
           telemetry: dict[str, np.ndarray]) -> list[Metric]:
    """Per-epoch loss median and 10/90% quantiles over seeds, the fraction converged and the
    optimizer telemetry, at most ``CURVE_POINTS`` epochs of them (step = epoch)."""
    recorded, loss = history["epochs"], history["loss"]
    if loss.size == 0:
        return []
    now = int(time.time() * 1000)
    chosen = np.unique(np.linspace(0, len(recorded) - 1,
                                   min(CURVE_POINTS, len(recorded))).round().astype(int))
    reached = np.sort([e if c else np.inf for e, c in zip(epochs, converged, strict=True)])
    at = recorded[chosen]
    converged_fraction = np.searchsorted(reached, at, side="right") / max(1, len(reached))
    picked = loss[chosen].astype(np.float64)
    picked[~np.isfinite(picked)] = np.nan
    has_loss = ~np.all(np.isnan(picked), axis=1)
    spread = np.full((len(chosen), 3), np.nan)
    if has_loss.any():
        rows = picked[has_loss]
        spread[has_loss, 0] = np.nanmedian(rows, axis=1)
        spread[has_loss, 1:] = np.nanquantile(rows, [0.1, 0.9], axis=1).T
    metrics = []
    for place, row in enumerate(chosen):
        epoch = int(recorded[row])
        values = {CURVE_KEY: float(converged_fraction[place])}
        if has_loss[place]:
            values.update(loss_median=float(spread[place, 0]), loss_p10=float(spread[place, 1]),
                          loss_p90=float(spread[place, 2]))
        values.update({TELEMETRY_GROUP + name: float(series[row])
                       for name, series in telemetry.items() if math.isfinite(series[row])})
        metrics += [Metric(key, value, now, epoch) for key, value in values.items()]
    return metrics
