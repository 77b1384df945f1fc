"""MLflow writes that keep up with batched studies: a batch of trial runs opened, and one
ended, in one transaction each where the store is a database (``mlflow_sql``), through
MLflow's API otherwise (an MLflow server over HTTP); and one background thread that does
the recorder's writes in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from studies.study import mlflow_sql
from studies.study.mlflow_sql import Ending, NewRun, Opened
from studies.study.mlflow_values import unlogged

log = logging.getLogger(__name__)
BATCH = 1000
"""MLflow's limit of metrics per ``log_batch``."""
PARAMS_BATCH = 100
"""MLflow's limit of params per ``log_batch``."""


def _sql_store(client: MlflowClient) -> SqlAlchemyStore | None:
    store = client._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


def create_runs(client: MlflowClient, experiment_id: str,
                runs: list[NewRun]) -> list[Opened]:
    """Open ``runs`` (RUNNING) in experiment ``experiment_id``; in order."""
    store = _sql_store(client)
    if not runs:
        return []
    if store is not None:
        return mlflow_sql.create_runs(store, experiment_id, runs)
    opened = []
    for run in runs:
        info = client.create_run(experiment_id, run_name=run.name, tags=run.tags).info
        _log_in_batches(client, info.run_id, run.params, [])
        opened.append(Opened(info.run_id, info.artifact_uri))
    return opened


def _log_in_batches(client: MlflowClient, run_id: str, params: list[Param],
                    metrics: list[Metric]) -> None:
    """``log_batch`` calls within MLflow's limits of params and metrics per call."""
    for start in range(0, len(params), PARAMS_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAMS_BATCH])
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def log_files(client: MlflowClient, run_id: str, folder: Path, artifact_path: str | None = None,
              *, artifact_uri: str | None = None) -> None:
    """Log the files in ``folder`` as the run's artifacts (under ``artifact_path``), straight
    into ``artifact_uri`` where it is known (MLflow's client reads the whole run back from
    the store first, to find it)."""
    if artifact_uri is None:
        client.log_artifacts(run_id, str(folder), artifact_path)
        return
    repository = get_artifact_repository(artifact_uri, tracking_uri=client.tracking_uri)
    repository.log_artifacts(str(folder), artifact_path)


def end_runs(client: MlflowClient, endings: list[Ending]) -> None:
    """End each run with its params (those it lacks), metrics, tags and status."""
    store = _sql_store(client)
    if not endings:
        return
    if store is not None:
        try:
            mlflow_sql.end_runs(store, endings)
        except Exception:
            if len(endings) == 1:
                raise
            # one bad run must not keep the others RUNNING: end each on its own
            log.exception("ending %d MLflow runs together failed: ending them one by one",
                          len(endings))
            failed = []
            for ending in endings:
                try:
                    mlflow_sql.end_runs(store, [ending])
                except Exception:
                    log.exception("ending MLflow run %s failed", ending.run_id)
                    failed.append(ending.run_id)
            if failed:
                raise MlflowException(f"could not end MLflow runs {failed}") from None
        return
    for ending in endings:
        logged = client.get_run(ending.run_id).data.params
        _log_in_batches(client, ending.run_id, unlogged(ending.params, logged),
                        ending.all_metrics())
        if ending.tags:
            client.log_batch(ending.run_id, tags=ending.tags)
        client.set_terminated(ending.run_id, ending.status)


class Writer:
    """Runs the recorder's writes on one background thread, in the order they were given, so
    Ray Tune's event loop never waits for MLflow. ``busy`` is the seconds spent writing;
    ``drain`` waits for what was given. A write that fails is logged and skipped: the
    recorder's ``close`` reconciles every run with the Optuna ledger."""

    def __init__(self) -> None:
        self.busy = 0.0
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = \
            queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        self._queue.put((write, args))

    def drain(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        self.drain()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                write, args = item
                start = time.perf_counter()
                try:
                    write(*args)
                except Exception:  # one failed write must not stop the others
                    log.exception("MLflow write %s failed", getattr(write, "__name__", write))
                finally:
                    self.busy += time.perf_counter() - start
            finally:
                self._queue.task_done()
