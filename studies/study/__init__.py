"""Study specs: tasks × arms (training algorithms), each arm's hyperparameters searched by
Optuna under the constraints of ALGORITHMS.md, over paired seeds, with one budget for all.

The names below are imported on first use, so that importing a light submodule (``home``)
does not import torch: a study driver begins Ray's start before its heavy modules load
(``studies/driver_start.py``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "Arm": "studies.study.arm",
    "Objective": "studies.study.execution",
    "ObjectiveTargets": "studies.study.execution",
    "Resources": "studies.study.execution",
    "Sampler": "studies.study.execution",
    "Scheduler": "studies.study.execution",
    "Choice": "studies.study.search_space",
    "FloatRange": "studies.study.search_space",
    "IntRange": "studies.study.search_space",
    "SearchParam": "studies.study.search_space",
    "StudySpec": "studies.study.spec",
    "TaskSpec": "studies.study.spec",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
