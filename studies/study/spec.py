"""A study: tasks × arms, each arm's hyperparameters searched by Optuna over paired seeds, with
the same budget for every arm. The file behind ``optistudy study run STUDY.yaml``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from optuna.distributions import BaseDistribution
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from studies.engine.config import InitConfig, ModelConfig, StopConfig, TrainConfig
from studies.specs import validation_error
from studies.study.arm import MAX_ITEMS, Arm
from studies.study.constraints import Problem
from studies.study.execution import Objective, Resources, Sampler, Scheduler
from studies.study.names import Name
from studies.study.search_space import FloatRange

_STRICT = ConfigDict(extra="forbid", frozen=True)
MAX_TEXT = 6000
"""The longest free text (a description) a spec may hold."""
# Any valid optimizer: a task is checked as a training config of its own before any arm.
_PROBE_OPTIMIZER = {"name": "adam"}


class TaskSpec(BaseModel):
    """A task with its model, loss, learning mode and stop rule: every field of a training
    config but the optimizer (the arm's), the seeds (the study's) and the device (the trial's
    resources). ``name`` is the task name unless a ``label`` is given (needed to run one task
    twice, e.g. with two models)."""

    model_config = _STRICT
    label: Name | None = None
    task: str
    model: ModelConfig | None = None
    init: InitConfig | None = None
    loss: Literal["sse", "half_sse", "mse", "bce", "cross_entropy"] = "sse"
    l2: float = Field(default=0.0, ge=0.0)
    mode: Literal["batch", "online", "minibatch"] = "batch"
    batch_size: int | None = Field(default=None, ge=1)
    order: Literal["fixed", "shuffled"] | list[int] = "shuffled"
    stop: StopConfig = Field(default_factory=StopConfig)
    dtype: Literal["float64", "float32"] = "float64"
    compile: bool = False

    @model_validator(mode="after")
    def _trains(self) -> TaskSpec:
        try:
            TrainConfig.model_validate({**self.fields(), "optimizer": _PROBE_OPTIMIZER})
        except ValidationError as error:
            raise validation_error(type(self).__name__, [
                (tuple(problem["loc"]), _message(problem)) for problem in error.errors()
            ]) from None
        return self

    @property
    def name(self) -> str:
        return self.label or self.task

    def fields(self) -> dict[str, Any]:
        """The training-config fields this task sets."""
        return self.model_dump(exclude={"label"})


class StudySpec(BaseModel):
    """Every arm on every task: per (task, arm) one Optuna study of ``trials_per_arm``
    trials, each trial training ``seeds_per_trial`` networks, seeds ``seed_start`` onwards —
    the same seeds in every trial of every arm, so arms are compared on paired seeds."""

    model_config = _STRICT
    name: Name
    description: str = Field(default="", max_length=MAX_TEXT)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_ITEMS)
    arms: list[Arm] = Field(min_length=1, max_length=MAX_ITEMS)
    seeds_per_trial: int = Field(ge=1, le=100_000)
    seed_start: int = Field(default=0, ge=0)
    trials_per_arm: int = Field(ge=1, le=100_000,
                                description="the same for every arm: a fair comparison")
    objective: Objective = Field(default_factory=Objective)
    sampler: Sampler = Field(default_factory=Sampler)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    resources: Resources = Field(default_factory=Resources)
    plots: Literal["best", "all", "none"] = Field(
        default="best", description="which trials get plots in MLflow: each arm's best "
        "trial (also shown on the arm's run), every trial (about 0.3 s of the driver's time "
        "each), or none")
    batch_trials: Literal["auto"] | Annotated[int, Field(ge=1, le=10_000)] = Field(
        default="auto", description="Optuna trials one Ray trial trains at once, as one "
        "population of configurations × seeds (each still its own Optuna trial and MLflow "
        "run): auto sizes batches so that every worker runs a few of them; 1 runs one Ray "
        "trial per Optuna trial. Arms searching non-numeric values, and the asha scheduler, "
        "always use 1")

    @model_validator(mode="after")
    def _valid(self) -> StudySpec:
        problems = [*self._name_problems(), *self._budget_problems(),
                    *self._execution_problems()]
        if not problems:
            problems = self._train_config_problems()
        if problems:
            raise validation_error(type(self).__name__, problems)
        return self

    @property
    def seeds(self) -> list[int]:
        """The seeds of every trial."""
        return list(range(self.seed_start, self.seed_start + self.seeds_per_trial))

    def train_config(self, task: TaskSpec, arm: Arm,
                     hyperparameters: dict[str, Any]) -> TrainConfig:
        """The full training config of one trial of ``arm`` on ``task``: ``hyperparameters``
        are the trial's sampled values (one for each searched name), merged with the arm's
        fixed ones; the arm's overrides replace task fields."""
        if set(hyperparameters) != set(arm.search):
            raise ValueError(f"arm {arm.name!r} searches {sorted(arm.search)}; got values for "
                             f"{sorted(hyperparameters)}")
        seeds: int | list[int] = self.seeds_per_trial if self.seed_start == 0 else self.seeds
        return TrainConfig.model_validate({
            **task.fields(),
            **arm.overrides,
            "optimizer": {"name": arm.optimizer, **arm.fixed_and(hyperparameters)},
            "seeds": seeds,
            "device": "cuda" if self.resources.gpus > 0 else "cpu",
        })

    def distributions(self, arm: Arm) -> dict[str, BaseDistribution]:
        """The Optuna search space of ``arm``."""
        return {name: param.distribution() for name, param in arm.search.items()}

    def _name_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        arms: dict[str, int] = {}
        for index, arm in enumerate(self.arms):
            if arm.name in arms:
                problems.append((("arms", index, "name"), f"arm name {arm.name!r} is already "
                                 f"used by arms.{arms[arm.name]} (allowed: distinct names)"))
            arms.setdefault(arm.name, index)
        tasks: dict[str, int] = {}
        for index, task in enumerate(self.tasks):
            if task.name in tasks:
                field = "label" if task.label else "task"
                problems.append((("tasks", index, field), f"task name {task.name!r} is already "
                                 f"used by tasks.{tasks[task.name]} (allowed: distinct names; "
                                 "give a task a label)"))
            tasks.setdefault(task.name, index)
        return problems

    def _budget_problems(self) -> list[Problem]:
        return [(("arms", index, "defaults"), f"{len(arm.defaults)} defaults but "
                 f"trials_per_arm is {self.trials_per_arm} (allowed: at most trials_per_arm "
                 "defaults: each is one of the arm's trials)")
                for index, arm in enumerate(self.arms) if len(arm.defaults) > self.trials_per_arm]

    def _execution_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        single = len(self.objective.targets().metrics) == 1
        if self.sampler.name == "cmaes" and not single:
            problems.append((("sampler", "name"), f"sampler 'cmaes' optimises one objective; "
                             f"objective {self.objective.goal!r} has two (allowed: tpe, gp, "
                             "random, grid)"))
        if self.scheduler.name == "asha" and not single:
            problems.append((("scheduler", "name"), f"scheduler 'asha' stops trials on one "
                             f"metric; objective {self.objective.goal!r} has two (allowed: "
                             "none)"))
        if self.sampler.name == "grid":
            problems.extend(
                (("arms", index, "search", name), "a float range cannot be gridded (allowed "
                 "under sampler 'grid': {choices: [...]} or {type: int, low, high, step})")
                for index, arm in enumerate(self.arms)
                for name, param in arm.search.items() if isinstance(param, FloatRange))
        return problems

    def _train_config_problems(self) -> list[Problem]:
        """Build every arm × task config at the low end of the arm's search space."""
        problems: list[Problem] = []
        shortest: tuple[int, str] | None = None
        for arm_index, arm in enumerate(self.arms):
            for task_index, task in enumerate(self.tasks):
                try:
                    config = self.train_config(task, arm, arm.lowest())
                except ValidationError as error:
                    problems.extend(_blame(error, arm_index, arm, task_index, task))
                    continue
                epochs = config.stop.max_epochs
                if shortest is None or epochs < shortest[0]:
                    shortest = (epochs, f"task {task.name!r} with arm {arm.name!r}")
        grace = self.scheduler.grace_period
        if self.scheduler.name == "asha" and shortest and grace > shortest[0]:
            problems.append((("scheduler", "grace_period"), f"{grace} epochs is more than "
                             f"max_epochs {shortest[0]} of {shortest[1]} (allowed: at most the "
                             "smallest max_epochs)"))
        return problems


def _blame(error: ValidationError, arm_index: int, arm: Arm, task_index: int,
           task: TaskSpec) -> list[Problem]:
    """Point a trial config's errors at the spec field behind them: the arm's overrides, the
    seeds, or the task."""
    problems: list[Problem] = []
    for problem in error.errors():
        loc = tuple(problem["loc"])
        message = _message(problem)
        if loc and loc[0] in arm.overrides:
            problems.append((("arms", arm_index, "overrides", *loc), message))
        elif loc and loc[0] == "seeds":
            problems.append((("seed_start",), message))
        elif not loc and arm.overrides:
            problems.append((("arms", arm_index, "overrides"),
                             f"{message} (on task {task.name!r}, tasks.{task_index})"))
        else:
            problems.append((("tasks", task_index, *loc), f"{message} (with arm {arm.name!r})"))
    return problems


def _message(problem: ErrorDetails) -> str:
    return str(problem["msg"]).removeprefix("Value error, ")
