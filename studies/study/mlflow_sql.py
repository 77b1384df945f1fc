"""A batch of trial runs written into an SQL tracking store (SQLite, PostgreSQL) in one
transaction each: opened (run rows, tags, params) and ended (params, metrics, latest metrics,
tags, status). The rows are the ones MLflow's own ``create_run``, ``log_batch`` and
``set_terminated`` write, so everything that reads the store (``get_run``, ``search_runs``,
``get_metric_history``, the UI) sees the same runs.

Why not MLflow's API: its SQL store opens a session, reads the run back and goes through the
ORM for every call, and ``log_batch`` alone is several transactions. A trial took about six
of them and 80 ms of the driver's CPU, which competes with the trials for the cores; a batch
of trials here is two transactions.
"""

from __future__ import annotations

import logging
import math
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

from mlflow.entities import LifecycleStage, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.dbmodels.models import (
    SqlExperiment,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from sqlalchemy import delete, insert, select, update

from studies.study.mlflow_values import Curves

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRun:
    """A run to open (RUNNING), with its tags and first params."""

    name: str
    tags: dict[str, str]
    params: list[Param] = field(default_factory=list)


class Opened(NamedTuple):
    """A run opened: its id, and where its artifacts go."""

    run_id: str
    artifact_uri: str


@dataclass(frozen=True)
class Ending:
    """What a run gets when it ends: params it lacks, metrics, curves, tags, its status."""

    run_id: str
    status: str
    params: list[Param] = field(default_factory=list)
    metrics: Sequence[Metric] = ()
    tags: list[RunTag] = field(default_factory=list)
    curves: Curves | None = None

    def all_metrics(self) -> list[Metric]:
        return [*self.metrics, *([] if self.curves is None else self.curves.metrics())]


def create_runs(store: SqlAlchemyStore, experiment_id: str,
                runs: list[NewRun]) -> list[Opened]:
    """Open ``runs`` in the active experiment ``experiment_id``; in order."""
    now = get_current_time_millis()
    ids = [uuid.uuid4().hex for _ in runs]
    with store.ManagedSessionMaker(read_only=False) as session:
        experiment = session.execute(
            select(SqlExperiment.lifecycle_stage, SqlExperiment.artifact_location)
            .where(SqlExperiment.experiment_id == int(experiment_id))).one_or_none()
        if experiment is None or experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(f"experiment {experiment_id} is not an active experiment")
        opened = [Opened(run_id, append_to_uri_path(experiment.artifact_location, run_id,
                                                    SqlAlchemyStore.ARTIFACTS_FOLDER_NAME))
                  for run_id in ids]
        session.execute(insert(SqlRun.__table__), [
            {"run_uuid": run_id, "name": run.name, "experiment_id": int(experiment_id),
             "artifact_uri": artifact_uri,
             "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
             "user_id": "unknown", "status": "RUNNING", "start_time": now, "end_time": None,
             "deleted_time": None, "source_version": "",
             "lifecycle_stage": LifecycleStage.ACTIVE}
            for (run_id, artifact_uri), run in zip(opened, runs, strict=True)])
        tags = [{"run_uuid": run_id, "key": key, "value": value}
                for run_id, run in zip(ids, runs, strict=True)
                for key, value in {**run.tags, MLFLOW_RUN_NAME: run.name}.items()]
        session.execute(insert(SqlTag.__table__), tags)
        params = [{"run_uuid": run_id, "key": param.key, "value": param.value}
                  for run_id, run in zip(ids, runs, strict=True) for param in run.params]
        if params:
            session.execute(insert(SqlParam.__table__), params)
    return opened


def end_runs(store: SqlAlchemyStore, endings: list[Ending]) -> None:
    """End active runs: params each lacks (a key it has keeps its value), metrics (the
    latest value per key kept up to date), tags (set or replaced) and status and end time.
    A run that is deleted is left as it is (MLflow refuses to write to it)."""
    now = get_current_time_millis()
    with store.ManagedSessionMaker(read_only=False) as session:
        wanted = {ending.run_id for ending in endings}
        active = {row.run_uuid for row in session.execute(
            select(SqlRun.run_uuid, SqlRun.lifecycle_stage).where(SqlRun.run_uuid.in_(wanted)))
            if row.lifecycle_stage == LifecycleStage.ACTIVE}
        for run_id in sorted(wanted - active):
            log.warning("MLflow run %s is deleted or missing: not recorded", run_id)
        endings = [ending for ending in endings if ending.run_id in active]
        if not endings:
            return
        _insert_params(session, endings)
        _insert_metrics(session, endings)
        _replace_tags(session, endings)
        for status in {ending.status for ending in endings}:
            session.execute(update(SqlRun.__table__).where(SqlRun.run_uuid.in_(
                [e.run_id for e in endings if e.status == status])).values(
                status=status, end_time=now))


def _insert_params(session: Any, endings: list[Ending]) -> None:
    logged = {(row.run_uuid, row.key) for row in session.execute(
        select(SqlParam.run_uuid, SqlParam.key).where(
            SqlParam.run_uuid.in_([ending.run_id for ending in endings])))}
    rows = {(ending.run_id, param.key): param.value
            for ending in endings for param in ending.params
            if (ending.run_id, param.key) not in logged}
    if rows:
        session.execute(insert(SqlParam.__table__), [
            {"run_uuid": run_id, "key": key, "value": value}
            for (run_id, key), value in rows.items()])


METRIC_COLUMNS = ("run_uuid", "key", "value", "timestamp", "step", "is_nan")


def _newer(row: tuple[Any, ...], than: tuple[Any, ...] | None) -> bool:
    """MLflow's order for a key's latest value: step, then timestamp, then value."""
    return than is None or (row[4], row[3], row[2]) > (than[4], than[3], than[2])


def _stored(value: float) -> tuple[float, bool]:
    """A metric value as MLflow stores it, and whether it is NaN: NaN as 0, +-inf as the
    largest finite floats (SQL has no infinities)."""
    if math.isnan(value):
        return 0.0, True
    if math.isinf(value):
        return math.copysign(sys.float_info.max, value), False
    return value, False


def _metric_rows(ending: Ending) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The ending's metrics as rows of MLflow's ``metrics`` table (``METRIC_COLUMNS``), and
    those of them that may be a key's latest value (a curve's last point)."""
    rows = []
    for metric in ending.metrics:
        value, is_nan = _stored(metric.value)
        rows.append((ending.run_id, metric.key, value, metric.timestamp, metric.step, is_nan))
    candidates = list(rows)
    if ending.curves is not None:  # finite points only; each curve in step order
        run_id, timestamp = ending.run_id, ending.curves.timestamp
        for key, values, steps in ending.curves.logged():
            count = len(values)
            rows += zip(repeat(run_id, count), repeat(key, count), values, repeat(timestamp, count),
                        steps, repeat(False, count), strict=True)
            if count:
                candidates.append(rows[-1])
    return rows, candidates


def _insert_metrics(session: Any, endings: list[Ending]) -> None:
    rows: list[tuple[Any, ...]] = []
    candidates: list[tuple[Any, ...]] = []
    for ending in endings:
        ending_rows, ending_candidates = _metric_rows(ending)
        rows += ending_rows
        candidates += ending_candidates
    if not rows:
        return
    rows = list(dict.fromkeys(rows))  # MLflow drops a batch's duplicate rows too
    ids = list({row[0] for row in rows})
    latest: dict[tuple[str, str], tuple[Any, ...]] = {
        (row.run_uuid, row.key): tuple(getattr(row, name) for name in METRIC_COLUMNS)
        for row in session.execute(select(SqlLatestMetric.__table__).where(
            SqlLatestMetric.run_uuid.in_(ids)))}
    changed: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in candidates:
        key = (row[0], row[1])
        if _newer(row, changed.get(key, latest.get(key))):
            changed[key] = row
    _insert_many(session, SqlMetric.__table__, rows)
    for run_id in {run_id for run_id, _ in changed}:
        keys = [key for owner, key in changed if owner == run_id and (owner, key) in latest]
        if keys:
            session.execute(delete(SqlLatestMetric.__table__).where(
                SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(keys)))
    _insert_many(session, SqlLatestMetric.__table__, list(changed.values()))


def _insert_many(session: Any, table: Any, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values in ``METRIC_COLUMNS`` order) with one executemany of the
    database driver: SQLAlchemy's own handling of each row's parameters would cost more
    than the database does (a trial's curves are about a thousand rows)."""
    if not rows:
        return
    connection = session.connection()
    marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(connection.dialect.paramstyle)
    if marks is None:  # a driver with another parameter style: SQLAlchemy Core
        session.execute(insert(table), [dict(zip(METRIC_COLUMNS, row, strict=True))
                                        for row in rows])
        return
    quote = connection.dialect.identifier_preparer.quote
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in METRIC_COLUMNS)}) "
        f"VALUES ({', '.join([marks] * len(METRIC_COLUMNS))})", rows)


def _replace_tags(session: Any, endings: list[Ending]) -> None:
    rows = {(ending.run_id, tag.key): tag.value for ending in endings for tag in ending.tags}
    if not rows:
        return
    for run_id, key in rows:
        session.execute(delete(SqlTag.__table__).where(SqlTag.run_uuid == run_id,
                                                       SqlTag.key == key))
    session.execute(insert(SqlTag.__table__), [
        {"run_uuid": run_id, "key": key, "value": value} for (run_id, key), value in rows.items()])
