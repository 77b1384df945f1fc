"""An arm of a study: one training algorithm, the hyperparameters it holds fixed and the
search space Optuna explores for the rest."""

from __future__ import annotations

import re
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import optimizers
from studies.engine.config import TrainConfig
from studies.specs import validation_error
from studies.study import constraints
from studies.study.constraints import Problem
from studies.study.names import Name
from studies.study.search_space import Loc, SearchParam

OVERRIDABLE = sorted(set(TrainConfig.model_fields) - {"task", "optimizer", "seeds", "device"})
"""The training-config fields a task sets and an arm may override."""

_INVALID = re.compile(r"Invalid ([\w\[\]]+): ")
MAX_ITEMS = 100
"""The most searched, fixed, default or overridden values an arm may hold."""


class Arm(BaseModel):
    """A training algorithm (``optimizer``, a registry name) with ``fixed`` hyperparameters
    and a ``search`` space over others, by the constructor's names (``betas[0]`` and
    ``betas[1]`` address Adam's pair one element at a time). ``defaults`` are points Optuna
    evaluates first (``points_to_evaluate``), each a value for every searched name.
    ``overrides`` replace task fields for this arm on every task, whole (a ``model`` or
    ``stop`` given here replaces the task's entirely).

    Validation checks every value the sampler may draw, not just one: each bound of
    ALGORITHMS.md at both ends of every range and at every choice, each order
    (delta_min < delta0 <= delta_max) between the ranges' extremes, and finally constructs the
    optimizer at each extreme and at each default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Name
    optimizer: str = Field(max_length=100)
    fixed: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ITEMS)
    search: dict[str, SearchParam] = Field(default_factory=dict, max_length=MAX_ITEMS)
    defaults: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    overrides: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ITEMS)

    @field_validator("optimizer")
    @classmethod
    def _known(cls, value: str) -> str:
        optimizers.get(value)
        return value

    @model_validator(mode="after")
    def _valid(self) -> Arm:
        problems = self._name_problems()
        if not problems:
            problems = constraints.check(self.optimizer, self.fixed, self.search)
        if not problems:
            problems = self._default_problems()
        if not problems:
            problems = self._probe_problems()
        if problems:
            raise validation_error(type(self).__name__, problems)
        return self

    def fixed_and(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The optimizer's arguments for one trial: the fixed values and the ``sampled`` ones,
        with ``betas[i]`` gathered into the ``betas`` tuple (its other element fixed or the
        optimizer's default)."""
        return constraints.assemble(self.optimizer, {**self.fixed, **sampled})

    def lowest(self) -> dict[str, Any]:
        """The low end of every searched range (the first of every choice)."""
        return {name: param.lowest() for name, param in self.search.items()}

    def _name_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        fixable = constraints.fixable(self.optimizer)
        searchable = constraints.searchable(self.optimizer)
        elements = constraints.elements(self.optimizer)
        for key in self.fixed:
            if key not in fixable:
                problems.append((("fixed", key), f"unknown hyperparameter {key!r} for "
                                 f"{self.optimizer} (allowed: {', '.join(fixable)})"))
            elif key in elements and elements[key][0] in self.fixed:
                problems.append((("fixed", key), f"{key!r} is also fixed by "
                                 f"fixed.{elements[key][0]} (allowed: one of the two)"))
        for key in self.search:
            if key not in searchable:
                problems.append((("search", key), f"unknown hyperparameter {key!r} to search "
                                 f"for {self.optimizer} (allowed: {', '.join(searchable)})"))
            elif key in self.fixed:
                problems.append((("search", key), f"{key!r} is both fixed and searched "
                                 "(allowed: one of the two)"))
            elif key in elements and elements[key][0] in self.fixed:
                problems.append((("search", key), f"{key!r} is searched but fixed by "
                                 f"fixed.{elements[key][0]} (allowed: one of the two)"))
        defaults = constraints.hyperparameters(self.optimizer)
        for name, default in defaults.items():
            value = self.fixed.get(name)
            if isinstance(default, tuple) and name in self.fixed and not (
                    isinstance(value, list | tuple) and len(value) == len(default)):
                problems.append((("fixed", name), f"{value!r} is not a list of {len(default)} "
                                 f"values (allowed: e.g. {list(default)})"))
            if default is constraints.REQUIRED and not (name in self.fixed
                                                        or name in self.search):
                problems.append(((), f"{self.optimizer} needs {name} (allowed: fixed.{name} "
                                 f"or search.{name})"))
        for key in self.overrides:
            if key not in OVERRIDABLE:
                problems.append((("overrides", key), f"unknown field {key!r} (allowed: "
                                 f"{', '.join(OVERRIDABLE)})"))
        return problems

    def _default_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        searched = sorted(self.search)
        allowed = ", ".join(searched) or "none: the arm searches nothing"
        for index, default in enumerate(self.defaults):
            missing = [name for name in searched if name not in default]
            if missing:
                problems.append((("defaults", index), f"missing {', '.join(missing)} (a default "
                                 f"gives every searched name: {allowed})"))
            for key, value in default.items():
                if key not in self.search:
                    problems.append((("defaults", index, key),
                                     f"{key!r} is not searched (allowed: {allowed})"))
                elif not self.search[key].contains(value):
                    problems.append((("defaults", index, key), f"{value!r} is outside the "
                                     f"search range (allowed: {self.search[key].allowed()})"))
        return problems

    def _probe_problems(self) -> list[Problem]:
        """Construct the optimizer at every extreme of the search space and at every default:
        the optimizer's own checks catch what the bounds table does not (a bad variant)."""
        lowest = self.lowest()
        lowest_at = {name: ("search", name, *param.extremes()[0][0])
                     for name, param in self.search.items()}
        points: list[tuple[dict[str, Any], dict[str, Loc]]] = [(lowest, lowest_at)]
        for name, param in self.search.items():
            for where, value in param.extremes():
                points.append(({**lowest, name: value},
                               {**lowest_at, name: ("search", name, *where)}))
        for index, default in enumerate(self.defaults):
            points.append((default, {name: ("defaults", index, name) for name in default}))
        optimizer_class = optimizers.get(self.optimizer)
        problems: list[Problem] = []
        for point, locs in points:
            try:
                optimizer_class([torch.zeros(1, requires_grad=True)], **self.fixed_and(point))
            except (TypeError, ValueError) as error:
                problems.append((self._blame(str(error), locs), str(error)))
        return problems

    def _blame(self, message: str, locs: dict[str, Loc]) -> Loc:
        """The field a constructor's ``Invalid NAME: ...`` message is about."""
        named = _INVALID.match(message)
        name = named.group(1) if named else ""
        parent = constraints.elements(self.optimizer).get(name, (name, 0))[0]
        if name in locs:
            return locs[name]
        if name in self.fixed:
            return ("fixed", name)
        if parent in self.fixed:
            return ("fixed", parent)
        return ()
