"""MLflow writes that keep up with batched studies: curves inserted in bulk into SQL tracking
stores, and one background thread that does the recorder's writes in order.

MLflow's own ``log_batch`` builds an ORM object per metric value and checks each against the
run's latest metrics: about a millisecond per value on a small machine, so a trial's curves
(a few thousand values) would cost more than training it. For a database store (SQLite,
PostgreSQL) the values go in with one multi-row INSERT into MLflow's ``metrics`` table and
the latest value per key into ``latest_metrics``, in one transaction; what MLflow reads back
(``get_metric_history``, the UI's charts, ``search_runs`` on metrics) is the same. Any other
store (an MLflow server over HTTP) gets ``log_batch`` calls.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from mlflow.entities import Metric
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient
from sqlalchemy import delete, insert

log = logging.getLogger(__name__)
BATCH = 1000
"""MLflow's limit of metrics per ``log_batch``."""


def log_metrics(client: MlflowClient, run_id: str, metrics: Sequence[Metric]) -> None:
    """Log ``metrics`` (each key's values at distinct steps) to the RUNNING run ``run_id``."""
    store = client._tracking_client.store
    if not isinstance(store, SqlAlchemyStore) or not metrics:
        for start in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=list(metrics[start : start + BATCH]))
        return
    rows = []
    latest: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        is_nan = math.isnan(metric.value)
        row = {"run_uuid": run_id, "key": metric.key, "value": 0.0 if is_nan else metric.value,
               "timestamp": metric.timestamp, "step": metric.step, "is_nan": is_nan}
        rows.append(row)
        now = latest.get(metric.key)
        if now is None or (row["step"], row["timestamp"], row["value"]) > (
                now["step"], now["timestamp"], now["value"]):
            latest[metric.key] = row
    with store.ManagedSessionMaker() as session:
        store._check_run_is_active(store._get_run(run_uuid=run_id, session=session))
        # SQLAlchemy Core (one executemany), not the ORM's per-object bookkeeping
        session.execute(insert(SqlMetric.__table__), rows)
        session.execute(delete(SqlLatestMetric.__table__).where(
            SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(list(latest))))
        session.execute(insert(SqlLatestMetric.__table__), list(latest.values()))


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
