"""Studies over HTTP end to end, with a real local Ray, real SQLite stores and real uvicorn
servers: submit, watch, restart the service while a study runs, read the report and find
the runs in MLflow; cancel a running study; a driver that died while the service was down."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from service import crud
from service.database import open_database
from service.settings import Settings
from studies.study.home import read_json
from tests.ray_cluster import RayHead
from tests.service.live import bearer, free_port, isolate, serving, settings_for, token, wait_for
from tests.service.studies_data import xor_study

pytestmark = pytest.mark.slow


def _submit(url: str, headers: dict[str, str], spec: dict[str, Any],
            status: str = "running") -> str:
    response = httpx.post(f"{url}/studies", content=yaml.safe_dump(spec), timeout=60,
                          headers={**headers, "Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == status, response.json()
    return str(response.json()["id"])


def _read(url: str, headers: dict[str, str], study_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/studies/{study_id}", headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _wait_until(url: str, headers: dict[str, str], study_id: str, seconds: float,
                condition: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def met() -> bool:
        seen.update(_read(url, headers, study_id))
        return bool(condition(seen))

    wait_for(met, seconds, f"study {study_id} (last seen: {seen.get('status')}, "
                           f"{seen.get('progress')})")
    return seen


def _trials(home: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{home / 'optuna.db'}"
    return [trial for summary in optuna.get_all_study_summaries(storage)
            if summary.study_name.startswith(name + ".")
            for trial in optuna.load_study(study_name=summary.study_name,
                                           storage=storage).get_trials()]


def _runs(home: Path, name: str) -> list[Any]:
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"optistudy/{name}")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def _driver_pid(settings: Settings, study_id: str) -> int:
    """The driver's pid, as the service recorded it (it leads its own session)."""
    with open_database(settings.database_url)() as session:
        study = crud.get_study(session, study_id=uuid.UUID(study_id))
        assert study is not None and study.driver_id is not None
        return int(study.driver_id)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reaped(pid: int) -> bool:
    """Reap the driver: the test process was the service that started it (a service process
    that ended would have left it to init)."""
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    return True


def _another_port(settings: Settings) -> Settings:
    return settings.model_copy(update={"port": free_port()})


def _assert_nothing_left_running(home: Path, name: str) -> None:
    states = [t.state for t in _trials(home, name)]
    assert optuna.trial.TrialState.RUNNING not in states, states
    assert optuna.trial.TrialState.FAIL in states, states
    runs = [r.info.status for r in _runs(home, name)]
    assert "RUNNING" not in runs and "KILLED" in runs, runs


def test_a_study_over_http_survives_a_restart_and_is_reported_and_in_mlflow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    isolate(tmp_path, monkeypatch, shared_ray)
    settings = settings_for(tmp_path, report_seeds=16)
    headers = bearer(token(settings, "alice"))
    with serving(settings) as url:
        study_id = _submit(url, headers, xor_study("laptop", arms=1))
    driver = _driver_pid(settings, study_id)
    assert _group_alive(driver), "the driver stopped with the service"
    with serving(_another_port(settings)) as url:
        assert _read(url, headers, study_id)["status"] == "running"  # found again, not failed
        done = _wait_until(url, headers, study_id, 300, lambda s: s["status"] != "running")
        assert done["status"] == "completed", done
        assert done["error"] is None and done["finished_at"] is not None
        for arm in done["progress"]:
            assert arm["trials_finished"] == arm["trials_requested"] == 2
            assert arm["trials_running"] == 0 and arm["best"]["metrics"]["members"] == 4
        assert done["mlflow"]["experiment_name"] == "optistudy/laptop"
        report = httpx.get(f"{url}/studies/{study_id}/report", headers=headers, timeout=300)
        assert report.status_code == 200, report.text
        assert report.headers["content-type"].startswith("text/markdown")
        assert "re-run on 16 fresh seeds" in report.text
        assert "| iRprop-plus |" in report.text
        built = (tmp_path / "studies" / "laptop" / "report.md").stat().st_mtime
        again = httpx.get(f"{url}/studies/{study_id}/report", headers=headers, timeout=60)
        assert again.text == report.text
        assert (tmp_path / "studies" / "laptop" / "report.md").stat().st_mtime == built
    runs = _runs(tmp_path, "laptop")
    assert all(run.info.status == "FINISHED" for run in runs)
    assert str(runs[0].info.experiment_id) == done["mlflow"]["experiment_id"]
    trials = [r for r in runs if r.data.tags.get("optistudy.role") == "trial"]
    assert sorted((r.data.tags["optistudy.arm"], r.data.tags["optuna.trial_number"])
                  for r in trials) == [("iRprop-plus", "0"), ("iRprop-plus", "1")]
    assert [r.data.tags["optistudy.role"] for r in runs].count("report") == 1


def _long_study(name: str) -> dict[str, Any]:
    """Trials of many seconds: momentum on 2048 seeds, most never meeting the target."""
    return xor_study(name, trials=4, seeds=2048, max_epochs=3000, arms=2)


def test_cancel_stops_the_driver_and_leaves_nothing_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    isolate(tmp_path, monkeypatch, shared_ray)
    settings = settings_for(tmp_path, cancel_grace_seconds=5, max_running_studies=1)
    headers = bearer(token(settings, "alice"))
    with serving(settings) as url:
        study_id = _submit(url, headers, _long_study("cancelled"))
        driver = _driver_pid(settings, study_id)
        # one driver at a time: the next two wait, queued, without a driver or a folder
        waiting, never = (_submit(url, headers, _long_study(name), "queued")
                          for name in ("next", "never"))
        assert not (tmp_path / "studies" / "never").exists()
        dropped = httpx.post(f"{url}/studies/{never}/cancel", headers=headers, timeout=120)
        assert dropped.status_code == 200 and dropped.json()["status"] == "cancelled"
        wait_for(lambda: any(r.info.status == "RUNNING" and r.data.tags.get("optistudy.role")
                             == "trial" for r in _runs(tmp_path, "cancelled")),
                 180, "a trial to run")
        cancelled = httpx.post(f"{url}/studies/{study_id}/cancel", headers=headers, timeout=120)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert not _group_alive(driver), "the driver's processes are still running"
        _assert_nothing_left_running(tmp_path, "cancelled")
        assert _read(url, headers, study_id)["status"] == "cancelled"
        again = httpx.post(f"{url}/studies/{study_id}/cancel", headers=headers)
        assert again.status_code == 409
        # its place is taken by the oldest queued study, not by the cancelled one
        _wait_until(url, headers, waiting, 30, lambda s: s["status"] == "running")
        assert _read(url, headers, never)["status"] == "cancelled"
        successor = _driver_pid(settings, waiting)
        ended = httpx.post(f"{url}/studies/{waiting}/cancel", headers=headers, timeout=120)
        assert ended.status_code == 200 and not _group_alive(successor)
    assert not (tmp_path / "studies" / "never").exists()


def test_dead_drivers_studies_are_failed_with_nothing_left_running_up_or_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    """The orphan sweep: a driver killed while the service runs has its study failed, its
    RUNNING Optuna trials and MLflow runs ended, within a few reconcile periods; one killed
    while the service is down, when the service starts."""
    isolate(tmp_path, monkeypatch, shared_ray)
    settings = settings_for(tmp_path)
    headers = bearer(token(settings, "alice"))
    with serving(settings) as url:
        live_id = _submit(url, headers, _long_study("orphan-live"))
        down_id = _submit(url, headers, _long_study("orphan"))
        _wait_until(url, headers, live_id, 180,
                    lambda s: any(arm["trials_running"] for arm in s["progress"]))
        driver = _driver_pid(settings, live_id)
        os.killpg(driver, signal.SIGKILL)
        # found by the service's reconcile loop (every reconcile_seconds = 1 s)
        found = _wait_until(url, headers, live_id, 10 * settings.reconcile_seconds,
                            lambda s: s["status"] == "failed")
        assert "ended before the study was complete" in found["error"]
        _assert_nothing_left_running(tmp_path, "orphan-live")
        # the other study had to wait for the CPUs the first one held
        _wait_until(url, headers, down_id, 180,
                    lambda s: any(arm["trials_running"] for arm in s["progress"]))
    driver = _driver_pid(settings, down_id)
    os.killpg(driver, signal.SIGKILL)
    wait_for(lambda: _reaped(driver) and not _group_alive(driver), 30,
             "the driver's session to end")
    with serving(_another_port(settings)) as url:
        found = _read(url, headers, down_id)
    assert found["status"] == "failed", found
    assert "ended before the study was complete" in found["error"]
    _assert_nothing_left_running(tmp_path, "orphan")


@pytest.fixture(autouse=True)
def _no_driver_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves running is stopped: each driver session still running a
    spec of this test's data dir."""
    yield
    for status in (tmp_path / "studies").glob("*/status.json"):
        pid = read_json(status).get("driver_pid")
        with contextlib.suppress(OSError):
            if pid and str(tmp_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(int(pid), signal.SIGKILL)
