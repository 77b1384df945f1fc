"""``Idempotency-Key`` on ``POST /studies`` (and ``/schedules``), and what it is for: the
service killed with SIGKILL at any moment of a submission, a retry with the same key ends with
one study and one driver. A real ``optistudy serve`` process, real drivers, real SQLite.

One kill serves many kill points: requests with their own keys are sent at seeded random
moments before the kill, so at the kill some are answered, one is inside the submission
(study committed, driver not yet started or not yet recorded) and some are not yet read.
The drivers are frozen (SIGSTOP) as soon as the service is dead, so they cost nothing, yet
still count as running drivers for the restarted service and for the assertions."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service import crud
from service.api.idempotency import request_hash
from service.database import open_database
from service.drivers import LocalDrivers
from service.models import IN_FLIGHT, IdempotencyKey, Study
from service.settings import Settings
from studies.specs import parse
from studies.study import StudySpec, runner
from studies.study.home import Home
from tests.ray_cluster import RayHead
from tests.service.live import bearer, isolate, serving, settings_for, token, wait_for
from tests.service.studies_data import xor_study

SEED = 8
REQUESTS = 6


def _spec(name: str) -> dict[str, Any]:
    return xor_study(name, trials=1, seeds=2, max_epochs=50, arms=1)


@contextmanager
def service_process(settings: Settings, cwd: Path,
                    log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``optistudy serve`` as a process of its own; killed (SIGKILL) when the block ends."""
    environment = dict(os.environ, OPTISTUDY_HOME=str(settings.home),
                       OPTISTUDY_PORT=str(settings.port), OPTISTUDY_RECONCILE_SECONDS="0.2",
                       OPTISTUDY_CANCEL_GRACE_SECONDS="0")
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], cwd=cwd,
                                   env=environment, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{settings.port}"

    def up() -> bool:
        if process.poll() is not None:
            return True
        with suppress(httpx.HTTPError):
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        return False

    try:
        wait_for(up, 240, "the service to start")
        assert process.poll() is None, log.read_text()[-3000:]
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _drivers(home: Path, names: list[str]) -> dict[str, list[int]]:
    """Per study, the session leaders running its spec file (its drivers)."""
    specs = {str(home / "studies" / name / "spec.yaml").encode(): name for name in names}
    found: dict[str, list[int]] = {name: [] for name in names}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            pid = int(entry.name)
            for spec, name in specs.items():
                if spec in arguments and os.getpgid(pid) == pid:
                    found[name].append(pid)
    return found


def _signal_groups(groups: list[int], sig: signal.Signals) -> None:
    for group in groups:
        with suppress(ProcessLookupError):
            os.killpg(group, sig)


def _killed_inside_a_submission(settings: Settings, names: list[str]) -> str:
    """What a service killed inside ``Execution.submit`` leaves: study ``committed`` and its
    key committed, nothing else; study ``launched`` committed, its folder written and its
    driver started (frozen at once), the driver's id not recorded. Returns that driver's id."""
    home = Home(settings.home)
    with open_database(settings.database_url)() as session:
        for name in ("committed", "launched"):
            spec = parse(StudySpec, _spec(name), name)
            study = crud.create_study(session, name=name, owner="alice",
                                      spec=spec.model_dump(mode="json"), driver_kind="local")
            crud.add_idempotency_key(session, owner="alice", route="studies",
                                     key=f"key-{name}", request_hash=request_hash(_spec(name)),
                                     resource_id=study.id)
            session.commit()
        runner.start(spec, home)
        driver = LocalDrivers(home).launch("launched")
    _signal_groups([int(driver)], signal.SIGSTOP)
    return driver


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="drivers are found through /proc")
def test_a_retry_after_a_kill_9_makes_one_study_and_one_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    home = tmp_path / "home"
    isolate(home, monkeypatch, shared_ray)
    settings = settings_for(home)
    headers = bearer(token(settings, "alice"))
    url = f"http://127.0.0.1:{settings.port}"
    log = tmp_path / "service.log"
    names = [f"crash{index}" for index in range(REQUESTS)] + ["committed", "launched"]
    keys = {name: f"key-{name}" for name in names}
    first: dict[str, httpx.Response | Exception] = {}

    def post(name: str, key: str, spec: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{url}/studies", json=spec or _spec(name),
                          headers={**headers, "Idempotency-Key": key}, timeout=60)

    def send(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            first[name] = post(name, keys[name])
        except httpx.HTTPError as error:
            first[name] = error

    try:
        with service_process(settings, tmp_path, log) as service:
            warm = post("warm", "key-warm")  # creates the stores: slower than the rest
            assert warm.status_code == 201, warm.text
            started = time.monotonic()
            second = post("warm2", "key-warm2")
            took = time.monotonic() - started
            assert second.status_code == 201, second.text
            again = post("warm", "key-warm")
            assert (again.status_code, again.json()["id"]) == (200, warm.json()["id"])
            other = post("warm", "key-warm", {**_spec("warm"), "seeds_per_trial": 3})
            assert other.status_code == 422
            assert other.json()["detail"][0].startswith("Idempotency-Key: the key 'key-warm' "
                                                        "was used with another request body")
            bad = post("warm", "a key with spaces")
            assert bad.status_code == 422
            assert bad.json()["detail"][0].startswith("Idempotency-Key: 'a key with spaces' "
                                                      "is not a valid key")
            for made in (warm, second):
                cancel = httpx.post(f"{url}/studies/{made.json()['id']}/cancel",
                                    headers=headers)
                assert cancel.status_code == 200, cancel.text

            # One kill, many kill points: each request's delay before the kill is random.
            rng = random.Random(SEED)
            window = max(0.3, took) * REQUESTS
            threads = [threading.Thread(target=send, args=(name, rng.uniform(0.0, window)))
                       for name in names[:REQUESTS]]
            for thread in threads:
                thread.start()
            time.sleep(window * rng.uniform(0.4, 0.6))
            service.send_signal(signal.SIGKILL)
            service.wait()
            _signal_groups([pid for pids in _drivers(home, names).values() for pid in pids],
                           signal.SIGSTOP)
            for thread in threads:
                thread.join(timeout=60)
        answered = {name: r.json()["id"] for name, r in first.items()
                    if isinstance(r, httpx.Response) and r.status_code == 201}
        # The two states inside a submission, made for certain (a random kill may miss
        # them): committed and nothing started; committed and a driver started, not recorded.
        adopted = _killed_inside_a_submission(settings, names)


        with service_process(settings, tmp_path, log):
            retried = {name: post(name, keys[name]) for name in names}
            time.sleep(1.0)  # a few reconcile rounds: none may start a second driver
            drivers = _drivers(home, names)
        with open_database(settings.database_url)() as session:
            outcome: dict[str, Any] = {}
            queued: list[str] = []
            for name in names:
                response = retried[name]
                assert response.status_code in (200, 201), response.text
                if name in answered:
                    assert (response.status_code, response.json()["id"]) == (200,
                                                                              answered[name])
                count = session.scalar(select(func.count()).select_from(Study)
                                       .where(Study.name == name))
                keys_made = session.scalar(select(func.count()).select_from(IdempotencyKey)
                                           .where(IdempotencyKey.key == keys[name]))
                study = session.scalar(select(Study).where(Study.name == name))
                assert (count, keys_made) == (1, 1), name
                assert study is not None and study.status in IN_FLIGHT, (name, study)
                if study.driver_id is None:  # waiting for one of max_running_studies places
                    assert (study.status, drivers[name]) == ("queued", []), (name, drivers)
                    queued.append(name)
                    continue
                assert drivers[name] == [int(study.driver_id)], (name, drivers, study.driver_id)
                if name == "launched":
                    assert study.driver_id == adopted  # found and kept, not started again
                outcome[name] = ("answered" if name in answered else "cut off",
                                 response.status_code)
            assert "launched" not in queued  # its driver runs already: adopted, not queued
            assert len(names) - len(queued) >= settings.max_running_studies, queued
        print("kill outcomes:", outcome, "queued:", queued)  # shown with -s
    finally:
        _signal_groups([pid for pids in _drivers(home, [*names, "warm", "warm2"]).values()
                        for pid in pids], signal.SIGKILL)


def test_schedules_take_an_idempotency_key(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(tmp_path / "home", monkeypatch)
    settings = settings_for(tmp_path / "home")
    headers = {**bearer(token(settings, "alice")), "Idempotency-Key": "schedule-1"}
    body = {"cron": "0 3 * * *", "suite": "classic"}
    with serving(settings) as url:
        made = httpx.post(f"{url}/schedules", json=body, headers=headers)
        assert made.status_code == 201, made.text
        again = httpx.post(f"{url}/schedules", json=body, headers=headers)
        assert (again.status_code, again.json()["id"]) == (200, made.json()["id"])
        other = httpx.post(f"{url}/schedules", json={**body, "cron": "0 4 * * *"},
                           headers=headers)
        assert other.status_code == 422
        assert other.json()["detail"][0].startswith("Idempotency-Key:")
        listed = httpx.get(f"{url}/schedules", headers=headers).json()
        assert listed["count"] == 1
