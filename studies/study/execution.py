"""How a study runs: what it optimises, which Optuna sampler proposes trials, which Ray Tune
scheduler may stop them early, and what each trial is given to run on."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal, NamedTuple

import optuna
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from studies.study.search_space import SearchParam

_STRICT = ConfigDict(extra="forbid", frozen=True)

# The packages an Optuna 5 sampler imports on first use, beyond optuna's own requirements.
_SAMPLER_PACKAGES: dict[str, tuple[str, ...]] = {"cmaes": ("cmaes",), "gp": ("scipy", "torch")}


class ObjectiveTargets(NamedTuple):
    """What a trial reports and which way is better: trial metric names, Ray Tune modes and
    Optuna directions, one each per objective."""

    metrics: list[str]
    modes: list[str]
    directions: list[str]


class Objective(BaseModel):
    """``epochs`` (the default): minimise ``epochs_penalised_mean``, the mean epochs to target
    over the trial's seeds with every failure counted at max_epochs; ``success_rate``:
    maximise the fraction of seeds that converged; ``both``: a multi-objective study of the
    two. A spec may write the goal alone: ``objective: both``."""

    model_config = _STRICT
    goal: Literal["epochs", "success_rate", "both"] = "epochs"

    @model_validator(mode="before")
    @classmethod
    def _goal_alone(cls, data: Any) -> Any:
        return {"goal": data} if isinstance(data, str) else data

    def targets(self) -> ObjectiveTargets:
        epochs = ("epochs_penalised_mean", "min", "minimize")
        success = ("success_rate", "max", "maximize")
        chosen = {"epochs": [epochs], "success_rate": [success], "both": [epochs, success]}
        metrics, modes, directions = zip(*chosen[self.goal], strict=True)
        return ObjectiveTargets(list(metrics), list(modes), list(directions))


def _missing(packages: tuple[str, ...]) -> list[str]:
    return [package for package in packages if importlib.util.find_spec(package) is None]


class Sampler(BaseModel):
    """The Optuna sampler of every (task, arm) study, seeded with ``seed``: ``tpe``, ``cmaes``
    (single objective; needs the ``cmaes`` package), ``gp`` (needs ``scipy`` and ``torch``),
    ``random``, or ``grid`` (every combination of the choices and int-range values, in an
    order shuffled by ``seed``; float ranges cannot be gridded)."""

    model_config = _STRICT
    name: Literal["tpe", "cmaes", "gp", "random", "grid"] = "tpe"
    seed: int = Field(default=0, ge=0, lt=2**32)

    @field_validator("name")
    @classmethod
    def _installed(cls, value: str) -> str:
        missing = _missing(_SAMPLER_PACKAGES.get(value, ()))
        if missing:
            raise ValueError(f"sampler {value!r} needs the package {' and '.join(missing)} "
                             f"(install it: pip install {' '.join(missing)})")
        return value

    def build(self, search: dict[str, SearchParam]) -> optuna.samplers.BaseSampler:
        """A fresh sampler for one study over ``search``."""
        if self.name == "tpe":
            return optuna.samplers.TPESampler(seed=self.seed)
        if self.name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=self.seed)
        if self.name == "gp":
            return optuna.samplers.GPSampler(seed=self.seed)
        if self.name == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.GridSampler(grid(search), seed=self.seed)


def grid(search: dict[str, SearchParam]) -> dict[str, list[Any]]:
    """The grid of a grid search: every value of each choice and int range."""
    values = {name: param.grid() for name, param in search.items()}
    floats = [name for name, value in values.items() if value is None]
    if floats:
        raise ValueError(f"float ranges cannot be gridded: {', '.join(floats)} (allowed under "
                         "sampler 'grid': {choices: [...]} or {type: int, low, high, step})")
    return {name: value for name, value in values.items() if value is not None}


class Scheduler(BaseModel):
    """``none``: every trial runs to its stop rule; ``asha``: Ray Tune's asynchronous
    successive halving stops unpromising trials early, judged first after ``grace_period``
    epochs, keeping 1/``reduction_factor`` of them at each rung (single objective only). The
    two settings are ignored with ``none``."""

    model_config = _STRICT
    name: Literal["none", "asha"] = "none"
    grace_period: int = Field(default=100, ge=1, description="epochs before the first cut")
    reduction_factor: float = Field(default=4.0, gt=1.0)


class Resources(BaseModel):
    """What one trial is given: ``cpus`` (> 0) and ``gpus`` (0 to 1; a fraction shares one
    GPU between trials). A trial given a GPU trains on it (device ``cuda``)."""

    model_config = _STRICT
    cpus: float = Field(default=1.0, gt=0.0)
    gpus: float = Field(default=0.0, ge=0.0, le=1.0)
