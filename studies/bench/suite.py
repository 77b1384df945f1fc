"""A benchmark suite: pinned training configurations (no search), each trained over its seeds,
and how a run of them is checked against a baseline. The file behind ``optistudy bench run``.

A suite names its ``tasks`` (every training-config field but the optimizer and the seeds, as
in a study) and its ``entries``: an algorithm with fixed hyperparameters on one task
(``task``), optionally replacing some of the task's fields (``overrides``) or the suite's
seeds (``seeds``). An entry is known by ``TASK/NAME``, e.g. ``xor/iRprop+``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from studies import benchmarks
from studies.engine.config import OptimizerConfig, TrainConfig
from studies.specs import parse, read_yaml, validation_error
from studies.study.arm import OVERRIDABLE
from studies.study.constraints import Problem
from studies.study.execution import Resources
from studies.study.names import Name
from studies.study.spec import TaskSpec

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Entry(BaseModel):
    """One pinned configuration: ``optimizer`` (a registry name and every hyperparameter it
    fixes) on the suite task labelled ``task``."""

    model_config = _STRICT
    task: Name
    name: Name
    optimizer: OptimizerConfig
    overrides: dict[str, Any] = Field(default_factory=dict)
    seeds: int | list[int] | None = Field(
        default=None, description="this entry's seeds instead of the suite's")

    @property
    def id(self) -> str:
        return f"{self.task}/{self.name}"


class CheckSettings(BaseModel):
    """When a check calls an entry regressed: a success-rate or epochs-to-target difference
    significant at ``alpha`` after Holm's correction over every test of the run, and, for
    epochs, a median over the seeds both runs converged on that is worse by more than
    ``epochs_margin`` (0.1: more than 10% more epochs)."""

    model_config = _STRICT
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    epochs_margin: float = Field(default=0.10, ge=0.0, le=10.0)


class Suite(BaseModel):
    """Every entry trained over its seeds as one population; the same seeds in every run of
    the suite, so a run and its baseline are compared seed by seed."""

    model_config = _STRICT
    name: Name
    description: str = ""
    seeds: int | list[int] = Field(default=16, description="a count (seeds 0..n-1) or a list")
    resources: Resources = Field(default_factory=Resources)
    check: CheckSettings = Field(default_factory=CheckSettings)
    tasks: list[TaskSpec] = Field(min_length=1)
    entries: list[Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> Suite:
        problems = self._name_problems()
        if not problems:
            problems = self._config_problems()
        if problems:
            raise validation_error(type(self).__name__, problems)
        return self

    def configs(self) -> dict[str, TrainConfig]:
        """Each entry's full training config, by entry id, in the suite's order."""
        return {entry.id: self._config(entry) for entry in self.entries}

    def _task(self, entry: Entry) -> TaskSpec:
        return next(task for task in self.tasks if task.name == entry.task)

    def _config(self, entry: Entry) -> TrainConfig:
        return TrainConfig.model_validate({
            **self._task(entry).fields(),
            **entry.overrides,
            "optimizer": entry.optimizer.model_dump(),
            "seeds": self.seeds if entry.seeds is None else entry.seeds,
            "device": "cuda" if self.resources.gpus > 0 else "cpu",
        })

    def _name_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        tasks: dict[str, int] = {}
        for index, task in enumerate(self.tasks):
            if task.name in tasks:
                field = "label" if task.label else "task"
                problems.append((("tasks", index, field), f"task name {task.name!r} is already "
                                 f"used by tasks.{tasks[task.name]} (allowed: distinct names; "
                                 "give a task a label)"))
            tasks.setdefault(task.name, index)
        entries: dict[str, int] = {}
        for index, entry in enumerate(self.entries):
            if entry.task not in tasks:
                problems.append((("entries", index, "task"), f"unknown task {entry.task!r} "
                                 f"(allowed: {', '.join(tasks)})"))
            if entry.id in entries:
                problems.append((("entries", index, "name"), f"entry {entry.id!r} is already "
                                 f"entries.{entries[entry.id]} (allowed: distinct names per "
                                 "task)"))
            entries.setdefault(entry.id, index)
            problems.extend((("entries", index, "overrides", key), f"unknown field {key!r} "
                             f"(allowed: {', '.join(OVERRIDABLE)})")
                            for key in entry.overrides if key not in OVERRIDABLE)
        return problems

    def _config_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for index, entry in enumerate(self.entries):
            try:
                self._config(entry)
            except ValidationError as error:
                problems.extend(self._blame(error, index, entry))
        return problems

    def _blame(self, error: ValidationError, index: int, entry: Entry) -> list[Problem]:
        """Point an entry config's errors at the suite field behind them: the entry's
        overrides, optimizer or seeds, the suite's seeds, or the entry's task."""
        task_index = next(i for i, task in enumerate(self.tasks) if task.name == entry.task)
        problems: list[Problem] = []
        for problem in error.errors():
            loc = tuple(problem["loc"])
            message = _message(problem)
            if loc and (loc[0] in entry.overrides or loc[0] == "optimizer"):
                problems.append((("entries", index, *loc), message))
            elif loc and loc[0] == "seeds":
                where = ("entries", index, "seeds") if entry.seeds is not None else ("seeds",)
                problems.append((where, message))
            elif not loc:
                problems.append((("entries", index), f"{message} (on task {entry.task!r})"))
            else:
                problems.append((("tasks", task_index, *loc),
                                 f"{message} (with entry {entry.id!r})"))
        return problems


def load_suite(reference: str) -> Suite:
    """The suite in the YAML file ``reference``, or the shipped suite of that name."""
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return parse(Suite, read_yaml(path), str(path))
    if reference not in benchmarks.names():
        raise ValueError(f"no suite file {reference!r} and no shipped suite of that name "
                         f"(allowed: a YAML file, or {', '.join(benchmarks.names())})")
    shipped = resources.files(benchmarks) / f"{reference}.yaml"
    with resources.as_file(shipped) as file:
        return parse(Suite, read_yaml(file), f"benchmarks/{reference}.yaml")


def _message(problem: ErrorDetails) -> str:
    return str(problem["msg"]).removeprefix("Value error, ")
