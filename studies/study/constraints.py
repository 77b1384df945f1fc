"""An optimizer's hyperparameters by name, and the search-space constraints of ALGORITHMS.md
checked for every value an arm may give them.

A hyperparameter takes its values from the arm's search range (every value the sampler may
draw), its fixed value, or else the optimizer's default. A bound (0 < eta_minus < 1) must hold
at each of them; an order (delta_min < delta0 <= delta_max) must hold between the largest value
the smaller may take and the smallest the larger may take, so that every combination the
sampler may draw is valid. A tuple hyperparameter (Adam's ``betas``) is also addressed by its
elements, ``betas[0]`` and ``betas[1]``, which may be fixed or searched one by one.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optimizers
from studies.study.search_space import Loc, SearchParam

Problem = tuple[Loc, str]
"""A field path inside the arm and what is wrong there."""

REQUIRED = inspect.Parameter.empty
"""The default of a hyperparameter the optimizer has no default for."""

# Parameters of an optimizer's constructor that are not hyperparameters a spec may set.
_NOT_HYPERPARAMETERS = {"self", "params", "members"}


@dataclass(frozen=True)
class _Bound:
    allowed: str
    holds: Callable[[float], bool]


_BOUNDS: dict[str, _Bound] = {
    "lr": _Bound("lr > 0", lambda v: v > 0),
    "momentum": _Bound("0 <= momentum < 1", lambda v: 0 <= v < 1),
    "alpha": _Bound("0 <= alpha < 1", lambda v: 0 <= v < 1),
    "eps": _Bound("eps > 0", lambda v: v > 0),
    "betas[0]": _Bound("0 <= betas[0] < 1", lambda v: 0 <= v < 1),
    "betas[1]": _Bound("0 <= betas[1] < 1", lambda v: 0 <= v < 1),
    "delta": _Bound("delta > 0", lambda v: v > 0),
    "eta_minus": _Bound("0 < eta_minus < 1", lambda v: 0 < v < 1),
    "eta_plus": _Bound("eta_plus > 1", lambda v: v > 1),
    "delta_min": _Bound("delta_min >= 0", lambda v: v >= 0),
    "delta0": _Bound("delta0 > 0", lambda v: v > 0),
    "delta_max": _Bound("delta_max > 0", lambda v: v > 0),
    "sigma1": _Bound("0 < sigma1 < 1", lambda v: 0 < v < 1),
    "sigma2": _Bound("0 < sigma2 < 1", lambda v: 0 < v < 1),
    "max_line_search_evals": _Bound("an integer >= 1",
                                    lambda v: isinstance(v, int) and v >= 1),
}

_STEP_SIZES = "0 <= delta_min < delta0 <= delta_max"
# (smaller, larger, strictly smaller, the rule as a person reads it)
_ORDERS: list[tuple[str, str, bool, str]] = [
    ("delta_min", "delta0", True, _STEP_SIZES),
    ("delta0", "delta_max", False, _STEP_SIZES),
    ("sigma1", "sigma2", True, "0 < sigma1 < sigma2 < 1"),
]


def hyperparameters(optimizer: str) -> dict[str, Any]:
    """The optimizer's hyperparameters and their defaults (``REQUIRED`` where it has none)."""
    signature = inspect.signature(optimizers.get(optimizer).__init__)
    return {name: parameter.default for name, parameter in signature.parameters.items()
            if name not in _NOT_HYPERPARAMETERS}


def _elements(name: str, default: Any) -> list[str]:
    return [f"{name}[{index}]" for index in range(len(default))] if isinstance(default,
                                                                              tuple) else []


def elements(optimizer: str) -> dict[str, tuple[str, int]]:
    """The element names of tuple hyperparameters: ``{"betas[0]": ("betas", 0), ...}``."""
    return {element: (name, index)
            for name, default in hyperparameters(optimizer).items()
            for index, element in enumerate(_elements(name, default))}


def searchable(optimizer: str) -> list[str]:
    """The names an arm may search: single values, so tuple hyperparameters by element."""
    names = []
    for name, default in hyperparameters(optimizer).items():
        names.extend(_elements(name, default) or [name])
    return sorted(names)


def fixable(optimizer: str) -> list[str]:
    """The names an arm may fix: every hyperparameter, tuples whole or by element."""
    names = []
    for name, default in hyperparameters(optimizer).items():
        names.extend([name, *_elements(name, default)])
    return sorted(names)


def assemble(optimizer: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from ``values``: ``betas[i]`` entries go into the ``betas`` tuple,
    whose other elements come from ``values["betas"]`` or else the optimizer's default."""
    arguments = dict(values)
    for name, default in hyperparameters(optimizer).items():
        elements = _elements(name, default)
        if not any(element in arguments for element in elements):
            continue
        whole = list(arguments.pop(name, default))
        for index, element in enumerate(elements):
            if element in arguments:
                whole[index] = arguments.pop(element)
        arguments[name] = tuple(whole)
    return arguments


@dataclass(frozen=True)
class _Use:
    """A value an arm may give a hyperparameter; ``loc`` is where the arm sets it (None: the
    optimizer's default)."""

    value: Any
    loc: Loc | None


def _uses(optimizer: str, fixed: Mapping[str, Any],
          search: Mapping[str, SearchParam]) -> dict[str, list[_Use]]:
    """Every searchable hyperparameter's possible values: the search range's extremes, the
    fixed value, or the default."""
    uses: dict[str, list[_Use]] = {}
    for name, default in hyperparameters(optimizer).items():
        elements = _elements(name, default)
        for index, element in enumerate(elements or [name]):
            if element in search:
                uses[element] = [_Use(value, ("search", element, *where))
                                 for where, value in search[element].extremes()]
            elif element in fixed:
                uses[element] = [_Use(fixed[element], ("fixed", element))]
            elif elements and name in fixed:
                uses[element] = [_Use(fixed[name][index], ("fixed", name, index))]
            elif default is not REQUIRED:
                uses[element] = [_Use(default[index] if elements else default, None)]
    return uses


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def check(optimizer: str, fixed: Mapping[str, Any],
          search: Mapping[str, SearchParam]) -> list[Problem]:
    """The bounds and orders of ALGORITHMS.md, for every value the arm may use. ``fixed`` and
    ``search`` must name known hyperparameters, tuples of the right length."""
    uses = _uses(optimizer, fixed, search)
    problems: list[Problem] = []
    for name, bound in _BOUNDS.items():
        for use in uses.get(name, []):
            if use.loc is None:
                continue
            if not _is_number(use.value):
                problems.append((use.loc, f"{use.value!r} is not a finite number "
                                          f"(allowed: {bound.allowed})"))
            elif not bound.holds(use.value):
                problems.append((use.loc, f"{use.value!r} is out of bounds "
                                          f"(allowed: {bound.allowed})"))
    if problems:
        return problems
    for smaller, larger, strict, allowed in _ORDERS:
        if smaller not in uses or larger not in uses:
            continue
        most = max(uses[smaller], key=lambda use: use.value)
        least = min(uses[larger], key=lambda use: use.value)
        if (most.value < least.value) if strict else (most.value <= least.value):
            continue
        relation = "<" if strict else "<="
        if most.loc is not None:
            problems.append((most.loc, f"{smaller} = {most.value!r} is not {relation} {larger} "
                                       f"= {least.value!r} ({_origin(least)}) (allowed: "
                                       f"{allowed})"))
        elif least.loc is not None:
            problems.append((least.loc, f"{smaller} = {most.value!r} ({_origin(most)}) is not "
                                        f"{relation} {larger} = {least.value!r} (allowed: "
                                        f"{allowed})"))
    return problems


def _origin(use: _Use) -> str:
    if use.loc is None:
        return "the optimizer's default"
    return ".".join(str(part) for part in use.loc)
