"""The service on PostgreSQL under load: one real service (its database, the Optuna storage
and the MLflow store each a fresh PostgreSQL database), 32 submissions at once over HTTP
(8 studies, each posted 4 times), and the 8 studies' drivers running side by side. Every
name is taken exactly once, every study completes, each Optuna study has distinct trial
numbers, each trial one MLflow run, and no one meets a storage error.

To keep it cheap the drivers join the session's shared Ray head (``RAY_ADDRESS`` in the
service's environment, which its drivers inherit) instead of starting a local Ray each."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.backends import Backend, stores
from tests.ray_cluster import RayHead
from tests.service.live import bearer, isolate, serving, settings_for, token, wait_for
from tests.service.studies_data import xor_study

pytestmark = pytest.mark.slow

STUDIES, COPIES = 8, 4  # 32 submissions, 8 drivers
STORAGE_ERRORS = re.compile(r"OperationalError|IntegrityError|InternalError|DatabaseError|"
                            r"database is locked|deadlock|psycopg\.|Traceback")


def _tiny(name: str) -> dict[str, Any]:
    """One task, one arm, 2 trials of 2 seeds and at most 20 epochs; a quarter of a CPU
    per trial, so that every driver's trial fits on the shared head at once."""
    spec = xor_study(name, trials=2, seeds=2, max_epochs=20, arms=1)
    spec.update(plots="none", resources={"cpus": 0.25})
    return spec


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Backend]:
    with stores("postgresql", tmp_path) as backend:
        yield backend


@pytest.fixture
def load_environment(tmp_path: Path, postgres: Backend, shared_ray: RayHead,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's environment: stores on PostgreSQL, drivers joining the session's Ray head
    (two CPUs); every driver still running at the end is stopped."""
    isolate(tmp_path, monkeypatch, shared_ray)
    postgres.apply(monkeypatch)
    try:
        yield shared_ray.address
    finally:
        _stop_drivers(tmp_path)


def _stop_drivers(home: Path) -> None:
    """Kill the session of every driver still running a spec of ``home`` (a failed test's;
    one that has not yet written its pid anywhere too)."""
    marker = f"{home}/studies/".encode()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                session = os.getsid(int(entry.name))
                if session != os.getsid(0):  # each driver leads a session of its own
                    os.killpg(session, signal.SIGKILL)


def _post(url: str, headers: dict[str, str], name: str) -> httpx.Response:
    return httpx.post(f"{url}/studies", content=yaml.safe_dump(_tiny(name)), timeout=120,
                      headers={**headers, "Content-Type": "application/yaml"})


def test_32_submissions_and_8_drivers_on_postgresql(
        tmp_path: Path, postgres: Backend, load_environment: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    settings = settings_for(tmp_path, max_running_studies=STUDIES)  # PostgreSQL: allowed
    assert settings.database_url == postgres.database_url
    headers = bearer(token(settings, "alice"))
    names = [f"load-{i}" for i in range(STUDIES)]
    with serving(settings) as url:
        with ThreadPoolExecutor(STUDIES * COPIES) as pool:
            answers = list(pool.map(lambda name: (name, _post(url, headers, name)),
                                    [name for name in names for _ in range(COPIES)]))
        for name in names:
            codes = sorted(r.status_code for n, r in answers if n == name)
            assert codes == [201] + [409] * (COPIES - 1), (
                name, [(r.status_code, r.text[:300]) for n, r in answers if n == name])
        ids = {r.json()["name"]: r.json()["id"] for _, r in answers if r.status_code == 201}

        def ended() -> list[dict[str, Any]]:
            listed = httpx.get(f"{url}/studies", headers=headers,
                               params={"limit": 100}).json()["data"]
            return [s for s in listed if s["status"] not in ("queued", "running")]

        wait_for(lambda: len(ended()) == STUDIES, 600, "the 8 studies to end")
        found = [httpx.get(f"{url}/studies/{ids[name]}", headers=headers).json()
                 for name in names]
    for study in found:
        assert study["status"] == "completed", (study["name"], study.get("error"))
        assert [(a["trials_finished"], a["trials_requested"]) for a in study["progress"]] == [
            (2, 2)]
    started = [datetime.fromisoformat(s["started_at"]) for s in found]
    finished = [datetime.fromisoformat(s["finished_at"]) for s in found]
    assert max(started) < min(finished), "the drivers did not run side by side"

    summaries = optuna.get_all_study_summaries(postgres.optuna_storage)
    assert sorted(s.study_name for s in summaries) == sorted(
        f"{name}.xor.iRprop-plus" for name in names)
    client = MlflowClient(postgres.tracking_uri)
    for name in names:
        trials = optuna.load_study(study_name=f"{name}.xor.iRprop-plus",
                                   storage=postgres.optuna_storage).get_trials()
        assert sorted(t.number for t in trials) == [0, 1], (name, [t.number for t in trials])
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), name
        experiment = client.get_experiment_by_name(f"optistudy/{name}")
        assert experiment is not None, name
        runs = client.search_runs([experiment.experiment_id], "tags.`optistudy.role` = 'trial'")
        assert sorted(r.data.tags["optuna.trial_number"] for r in runs) == ["0", "1"], name
        assert all(r.info.status == "FINISHED" for r in runs), name
        log = (tmp_path / "studies" / name / "driver.log").read_text()
        assert not STORAGE_ERRORS.search(log), (name, log[-3000:])
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records]
