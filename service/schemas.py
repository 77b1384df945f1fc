"""What the API sends and receives. A study is created from its spec (``StudyCreate``: the
YAML or JSON of ``optistudy study run``), shown as ``StudyPublic`` (in lists) or
``StudyDetail`` (with its progress and its MLflow experiment)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.models import StudyStatus

STUDY_CREATE_SCHEMA: dict[str, Any] = {
    "title": "StudyCreate",
    "type": "object",
    "description": "A study spec, as for 'optistudy study run' (see studies/catalog/*.yaml): "
                   "name, tasks, arms, seeds_per_trial, trials_per_arm, ...",
    "required": ["name", "tasks", "arms", "seeds_per_trial", "trials_per_arm"],
}
"""The request body of ``POST /studies``: validated as a ``StudySpec``, field by field."""


class StudyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    owner: str
    status: StudyStatus
    driver_kind: str = Field(description="local (a process on the service's machine) or "
                                         "ray-job")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class StudiesQuery(BaseModel):
    """A page of studies: ``limit`` from the ``offset``-th, newest first, of one status."""

    model_config = ConfigDict(extra="forbid")
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
    limit: int = Field(default=100, ge=1, le=100)
    status: StudyStatus | None = None


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int = Field(description="how many studies match, on every page")


class BestTrial(BaseModel):
    number: int = Field(description="the Optuna trial number")
    params: dict[str, Any]
    metrics: dict[str, Any]


class ArmProgress(BaseModel):
    task: str
    arm: str
    trials_requested: int
    trials_finished: int = Field(description="complete, pruned or failed")
    trials_running: int
    best: BestTrial | None = Field(description="the best finished trial by the study's "
                                               "objective, so far")


class MlflowExperiment(BaseModel):
    experiment_id: str
    experiment_name: str
    url: str | None = Field(description="the experiment in the MLflow UI, where MLflow is a "
                                        "server")


class StudyDetail(StudyPublic):
    spec: dict[str, Any]
    objective_metric: str
    progress: list[ArmProgress]
    mlflow: MlflowExperiment | None


class Problems(BaseModel):
    """Why a request was refused: one line per problem (``field.path: what is wrong``)."""

    detail: list[str] | str


class Health(BaseModel):
    status: str
