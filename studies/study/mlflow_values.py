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

CURVE_POINTS = 200
"""Per-epoch curves are downsampled to at most this many points, so the UI stays fast."""
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
    reached = np.array([e if c else np.inf for e, c in zip(epochs, converged, strict=True)])
    metrics = []
    for row in chosen:
        epoch = int(recorded[row])
        losses = loss[row][np.isfinite(loss[row])]
        values = {"frac_converged": float((reached <= epoch).mean())}
        if losses.size:
            values.update(loss_median=float(np.median(losses)),
                          loss_p10=float(np.quantile(losses, 0.1)),
                          loss_p90=float(np.quantile(losses, 0.9)))
        values.update({TELEMETRY_GROUP + name: float(series[row])
                       for name, series in telemetry.items() if math.isfinite(series[row])})
        metrics += [Metric(key, value, now, epoch) for key, value in values.items()]
    return metrics
