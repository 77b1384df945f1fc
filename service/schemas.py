"""What the API sends and receives. A study is created from its spec (``StudyCreate``: the
YAML or JSON of ``optistudy study run``), shown as ``StudyPublic`` (in lists) or
``StudyDetail`` (with its progress and its MLflow experiment)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.models import BenchmarkRunStatus, StudyStatus, Verdict

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


class ScheduleCreate(BaseModel):
    """A suite checked on a cron schedule: ``optistudy bench run SUITE --check`` at each
    slot."""

    model_config = ConfigDict(extra="forbid")
    cron: str = Field(max_length=100, description="5 fields (minute hour day-of-month month "
                                                  "day-of-week), UTC, e.g. '0 3 * * *'")
    suite: str = Field(max_length=100, description="a shipped suite (classic) or a file "
                                                   "suites/NAME.yaml in the data dir, by name")
    baseline: str | None = Field(default=None, max_length=100,
                                 description="the run to check against (default: the "
                                             "suite's promoted baseline)")
    missed: Literal["run_once", "skip"] = Field(
        default="run_once", description="slots missed while no service ran: run the latest "
        "once when the service is back, or skip them")


class SchedulePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    owner: str
    cron: str
    suite: str
    baseline: str | None
    missed: str
    enabled: bool
    created_at: datetime
    next_slot: datetime = Field(description="the next slot (UTC) to run")


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    count: int


class BenchmarkRunsQuery(BaseModel):
    """A page of scheduled benchmark runs, newest slot first, optionally of one schedule."""

    model_config = ConfigDict(extra="forbid")
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
    limit: int = Field(default=100, ge=1, le=100)
    schedule_id: uuid.UUID | None = None


class BenchmarkRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    schedule_id: uuid.UUID | None
    owner: str
    suite: str
    slot: datetime
    status: BenchmarkRunStatus
    started_at: datetime
    finished_at: datetime | None
    bench_run_id: str | None = Field(description="the stored bench run ('optistudy bench "
                                                 "list SUITE')")
    verdict: Verdict | None = Field(description="ok (exit 0), regressed (exit 1) or error")
    exit_code: int | None
    summary: str | None = Field(description="the end of the bench run's output")


class BenchmarkRunsPublic(BaseModel):
    data: list[BenchmarkRunPublic]
    count: int = Field(description="how many runs match, on every page")


class Problems(BaseModel):
    """Why a request was refused: one line per problem (``field.path: what is wrong``)."""

    detail: list[str] | str


class Health(BaseModel):
    status: str
