"""Study specs: tasks × arms (training algorithms), each arm's hyperparameters searched by
Optuna under the constraints of ALGORITHMS.md, over paired seeds, with one budget for all."""

from studies.study.arm import Arm
from studies.study.execution import (
    Objective,
    ObjectiveTargets,
    Resources,
    Sampler,
    Scheduler,
)
from studies.study.search_space import Choice, FloatRange, IntRange, SearchParam
from studies.study.spec import StudySpec, TaskSpec

__all__ = [
    "Arm",
    "Choice",
    "FloatRange",
    "IntRange",
    "Objective",
    "ObjectiveTargets",
    "Resources",
    "Sampler",
    "Scheduler",
    "SearchParam",
    "StudySpec",
    "TaskSpec",
]
