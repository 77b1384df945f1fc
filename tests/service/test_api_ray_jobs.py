"""The service pointed at a Ray cluster by configuration only (``OPTISTUDY_RAY_ADDRESS``):
a real Ray head on this machine (dashboard and job server, token authentication), a real
uvicorn on loopback, each study's driver a Ray Job that records to the service's stores.
Submit two studies; restart the service while they run (found again from the jobs'
status), cancel the long one (its job ends STOPPED, its trials stop, nothing is left
RUNNING) and see the other complete, recorded in the service's Optuna and MLflow stores."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml
from ray.job_submission import JobStatus, JobSubmissionClient

from service import crud
from service.database import open_database
from service.drivers import RayJobs
from service.settings import Settings
from studies.study import ledger
from studies.study.home import Home
from tests.ray_cluster import wait_for_nodes
from tests.service.live import bearer, free_port, isolate, serving, settings_for, token, wait_for
from tests.service.studies_data import xor_study
from tests.service.test_api import (
    _another_port,
    _assert_nothing_left_running,
    _read,
    _runs,
    _trials,
    _wait_until,
)

pytestmark = pytest.mark.slow


def _job_server(url: str) -> JobSubmissionClient:
    """A client of the head's job server, once it answers (with the test's token)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            client = JobSubmissionClient(url)
            client.list_jobs()
            return client
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _reload_ray_auth() -> None:
    """Make this process (the service runs in it) see the Ray auth variables as they are
    now: Ray reads them once into its cached config and token."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def ray_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Ray head with its dashboard / job server on loopback, two CPUs, token
    authentication with the test's token (the service and the jobs' drivers use it too),
    the venv's ``optistudy`` on its PATH; started in its own session and stopped by killing
    it. Yields the job server's URL."""
    isolate(tmp_path, monkeypatch)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    _reload_ray_auth()
    venv = Path(sys.executable).parent
    port, dashboard = free_port(), free_port()
    environment = dict(os.environ, RAY_ADDRESS="",
                       PATH=f"{venv}{os.pathsep}{os.environ.get('PATH', '')}")
    # Its own temp dir (short: Ray's socket paths are limited), so that no
    # /tmp/ray/ray_current_cluster is left naming it for a later plain ray.init().
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = subprocess.Popen(
        [str(venv / "ray"), "start", "--head", "--block", f"--port={port}", f"--temp-dir={temp}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={free_port()}",
         f"--ray-client-server-port={free_port()}", "--num-cpus=2", "--num-gpus=0",
         "--disable-usage-stats"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for_nodes(f"127.0.0.1:{port}", 1)
        url = f"http://127.0.0.1:{dashboard}"
        _job_server(url)
        yield url
    finally:
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
        monkeypatch.undo()
        _reload_ray_auth()


def _submit(url: str, headers: dict[str, str], spec: dict[str, Any]) -> str:
    """Submit ``spec``; its driver is a Ray job, queued (PENDING) or already running."""
    response = httpx.post(f"{url}/studies", content=yaml.safe_dump(spec), timeout=60,
                          headers={**headers, "Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    assert response.json()["status"] in ("queued", "running"), response.json()
    return str(response.json()["id"])


def _job_id(settings: Settings, study_id: str) -> str:
    with open_database(settings.database_url)() as session:
        study = crud.get_study(session, study_id=uuid.UUID(study_id))
        assert study is not None and study.driver_kind == "ray-job", study
        assert study.driver_id is not None
        return study.driver_id


def _alive_actors(address: str, ray_job: str) -> list[str]:
    """The live actors (trials) of Ray job ``ray_job`` (the driver's job id)."""
    from ray.util.state import list_actors

    return [actor.class_name for actor in list_actors(
        address=address, filters=[("job_id", "=", ray_job), ("state", "=", "ALIVE")])]


def test_studies_run_as_ray_jobs_survive_a_restart_and_are_cancelled(
        tmp_path: Path, ray_head: str) -> None:
    settings = settings_for(tmp_path, ray_address=ray_head, cancel_grace_seconds=3)
    headers = bearer(token(settings, "alice"))
    jobs = _job_server(ray_head)
    with serving(settings) as url:
        small_id = _submit(url, headers, xor_study("on-ray", arms=1))
        # trials of many seconds: momentum on 2048 seeds, most never meeting the target
        long_id = _submit(url, headers, xor_study("stopped", trials=4, seeds=2048,
                                                  max_epochs=3000, arms=2))
        small, long = _job_id(settings, small_id), _job_id(settings, long_id)
        wait_for(lambda: any(r.info.status == "RUNNING" and r.data.tags.get("optistudy.role")
                             == "trial" for r in _runs(tmp_path, "stopped")),
                 180, "a trial to run")
    assert jobs.get_job_status(long) == JobStatus.RUNNING, "the job stopped with the service"
    ray_job = jobs.get_job_info(long).job_id
    assert ray_job and _alive_actors(ray_head, ray_job), "no trial runs in the job"

    with serving(_another_port(settings)) as url:
        assert _read(url, headers, long_id)["status"] == "running"  # found again
        cancelled = httpx.post(f"{url}/studies/{long_id}/cancel", headers=headers, timeout=120)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert jobs.get_job_status(long) == JobStatus.STOPPED
        _assert_nothing_left_running(tmp_path, "stopped")
        wait_for(lambda: not _alive_actors(ray_head, ray_job), 30, "the trials to stop")
        assert _read(url, headers, long_id)["status"] == "cancelled"

        done = _wait_until(url, headers, small_id, 240, lambda s: s["status"] not in (
            "queued", "running"))
        assert done["status"] == "completed", (done, jobs.get_job_logs(small)[-3000:])
        assert jobs.get_job_status(small) == JobStatus.SUCCEEDED
        assert jobs.get_job_info(small).metadata == {"optistudy.study": "on-ray"}
        for arm in done["progress"]:
            assert arm["trials_finished"] == arm["trials_requested"] == 2
    # the job's driver recorded to the service's data dir and stores
    assert ledger.state(Home(settings.home), "on-ray") == "complete"
    states = [t.state for t in _trials(tmp_path, "on-ray")]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2, states
    runs = _runs(tmp_path, "on-ray")
    assert runs and all(run.info.status == "FINISHED" for run in runs)
    assert sorted(r.data.tags["optuna.trial_number"] for r in runs
                  if r.data.tags.get("optistudy.role") == "trial") == ["0", "1"]
    # a job the cluster does not know (its head restarted) is a driver that ended
    unknown = RayJobs(ray_head, Home(settings.home))
    assert unknown.phase("raysubmit_unknown", "on-ray") == "failed"
    assert "unknown to the cluster" in unknown.error("raysubmit_unknown", "on-ray")
