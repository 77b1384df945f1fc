"""Plain-Python reference loops for the Rprop family and GRprop, written from ALGORITHMS.md.

Lists of floats, one weight at a time, no torch: the ground truth that the optimizers in
``optimizers/rprop.py`` and ``optimizers/grprop.py`` must reproduce (GRprop with τ = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tests.optimizers.database import ReferenceLoop

Objective = Callable[[list[float]], tuple[float, list[float]]]
"""The weights -> (loss, gradient)."""

DEFAULTS = {"delta0": 0.1, "delta_min": 1e-6, "delta_max": 50.0, "eta_minus": 0.5, "eta_plus": 1.2}


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def _settings(kwargs: dict[str, Any]) -> tuple[float, float, float, float, float]:
    values = {**DEFAULTS, **kwargs}
    return (
        float(values["delta0"]),
        float(values["delta_min"]),
        float(values["delta_max"]),
        float(values["eta_minus"]),
        float(values["eta_plus"]),
    )


def rprop_reference(kwargs: dict[str, Any]) -> ReferenceLoop:
    """Rprop+, Rprop−, iRprop+ or iRprop− (``kwargs["variant"]``, default iRprop−)."""
    variant = kwargs.get("variant", "iRprop-")
    delta0, delta_min, delta_max, eta_minus, eta_plus = _settings(kwargs)

    def run(weights: list[float], f: Objective, steps: int) -> list[list[float]]:
        w = list(weights)
        n = len(w)
        delta = [delta0] * n
        g_old = [0.0] * n
        dw_prev = [0.0] * n
        e_old = math.inf
        history = []
        for _ in range(steps):
            e, g = f(w)
            for i in range(n):
                product = g[i] * g_old[i]
                if product > 0:
                    delta[i] = min(delta[i] * eta_plus, delta_max)
                elif product < 0:
                    delta[i] = max(delta[i] * eta_minus, delta_min)

                if variant == "Rprop-":
                    w[i] -= _sign(g[i]) * delta[i]
                    g_old[i] = g[i]
                elif variant == "iRprop-":
                    if product < 0:
                        g_old[i] = 0.0
                    else:
                        w[i] -= _sign(g[i]) * delta[i]
                        g_old[i] = g[i]
                elif product < 0:  # Rprop+ and iRprop+ on a sign change
                    if variant == "Rprop+" or e > e_old:
                        w[i] -= dw_prev[i]
                    g_old[i] = 0.0
                else:
                    dw = -_sign(g[i]) * delta[i]
                    w[i] += dw
                    dw_prev[i] = dw
                    g_old[i] = g[i]
            e_old = e
            history.append(list(w))
        return history

    return run


def grprop_reference(kwargs: dict[str, Any]) -> ReferenceLoop:
    """GRprop ``sag`` or ``slr`` (``kwargs["variant"]``, default sag) with τ = 1."""
    variant = kwargs.get("variant", "sag")
    delta0, delta_min, delta_max, eta_minus, eta_plus = _settings(kwargs)
    small = float(kwargs.get("delta", 1e-6))

    def run(weights: list[float], f: Objective, steps: int) -> list[list[float]]:
        w = list(weights)
        n = len(w)
        eta = [delta0] * n
        g_old = [0.0] * n
        history = []
        for _ in range(steps):
            _, g = f(w)
            for i in range(n):  # the Rprop− schedule
                product = g[i] * g_old[i]
                if product > 0:
                    eta[i] = min(eta[i] * eta_plus, delta_max)
                elif product < 0:
                    eta[i] = max(eta[i] * eta_minus, delta_min)
            candidates = [j for j in range(n) if g[j] != 0]
            if candidates:
                if variant == "sag":
                    m = min(candidates, key=lambda j: abs(g[j]))  # min keeps the first on ties
                else:
                    m = min(candidates, key=lambda j: eta[j])
                others = 0.0
                for j in range(n):
                    if j != m:
                        others += eta[j] * g[j]
                eta[m] = min(max(-(others + small) / g[m], delta_min), delta_max)
            for i in range(n):
                w[i] -= _sign(g[i]) * eta[i]
                g_old[i] = g[i]
            history.append(list(w))
        return history

    return run
