"""Scheduled regression benchmarks over HTTP: schedules are checked (cron, suite, baseline)
and their owner's alone; the scheduler fires a slot a few seconds out, runs the suite against
its baseline, records the run and its verdict, and never runs a slot twice, with two services
on one database or across a restart. A real server on loopback, a real SQLite (or, for
the schedules and runs routes, PostgreSQL) database."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from service.database import open_database
from service.models import BenchmarkRun, BenchmarkRunStatus, Schedule, Verdict
from service.scheduler import SUITES_DIR, slot_to_run
from service.settings import Settings
from studies.bench import BenchStore
from studies.study.home import Home
from tests.backends import BACKENDS, stores
from tests.ray_cluster import RayHead
from tests.service.live import bearer, isolate, serving, settings_for, token, wait_for

TINY_SUITE: dict[str, Any] = {
    "name": "tiny",
    "seeds": 4,
    "tasks": [{"task": "xor", "stop": {"target": {"quantity": "sse", "below": 0.01},
                                       "max_epochs": 300}}],
    "entries": [{"task": "xor", "name": "iRprop_plus",
                 "optimizer": {"name": "rprop", "variant": "iRprop+"}}],
}
NIGHTLY = "0 3 * * *"


def _write_suite(home: Path) -> Path:
    path = home / SUITES_DIR / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(TINY_SUITE))
    return path


@dataclass
class Service:
    url: str
    settings: Settings
    tokens: dict[str, str]


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """alice, bob and root (an admin); the tiny suite in the data dir; nothing due; on
    each backend's service database (SQLite, then PostgreSQL)."""
    home = tmp_path_factory.mktemp("home")
    with stores(request.param, home) as backend, pytest.MonkeyPatch.context() as monkeypatch:
        isolate(home, monkeypatch)
        backend.apply(monkeypatch)
        _write_suite(home)
        settings = settings_for(home, scheduler_seconds=0.2)
        tokens = {owner: token(settings, owner) for owner in ("alice", "bob")}
        tokens["root"] = token(settings, "root", admin=True)
        with serving(settings) as url:
            yield Service(url, settings, tokens)


def _post(service: Service, owner: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{service.url}/schedules", json=body,
                      headers=bearer(service.tokens[owner]))


@pytest.mark.parametrize(("body", "field"), [
    ({"cron": "not a cron", "suite": "tiny"}, "cron"),
    ({"cron": "0 0 31 2 *", "suite": "tiny"}, "cron"),      # February 31st: never
    ({"cron": "61 * * * *", "suite": "tiny"}, "cron"),
    ({"cron": "* * * * * *", "suite": "tiny"}, "cron"),     # seconds: not allowed
    ({"cron": NIGHTLY, "suite": "no-such-suite"}, "suite"),
    ({"cron": NIGHTLY, "suite": "../../etc/passwd"}, "suite"),
    ({"cron": NIGHTLY, "suite": "/tmp/x.yaml"}, "suite"),
    ({"cron": NIGHTLY, "suite": "tiny", "baseline": "20260101T000000.000000Z-abcdef"},
     "baseline"),
    ({"cron": NIGHTLY}, "suite"),
])
def test_an_invalid_schedule_is_refused_naming_its_field(
        service: Service, body: dict[str, Any], field: str) -> None:
    response = _post(service, "alice", body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(problem.startswith(f"{field}:") for problem in problems), problems


def test_never_firing_cron_is_named_as_such(service: Service) -> None:
    problems = _post(service, "alice", {"cron": "0 0 31 2 *", "suite": "tiny"}).json()
    assert problems["detail"] == ["cron: '0 0 31 2 *' never fires within 5 years (allowed: 5 "
                                  "fields: minute hour day-of-month month day-of-week, in "
                                  "UTC, e.g. '0 3 * * *')"]


def test_a_schedule_is_its_owners_alone(service: Service) -> None:
    created = _post(service, "alice", {"cron": NIGHTLY, "suite": "tiny"})
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["owner"] == "alice" and schedule["enabled"] and schedule["baseline"] is None
    slot = datetime.fromisoformat(schedule["next_slot"])
    assert (slot.hour, slot.minute) == (3, 0) and slot > datetime.now(UTC)
    # January 1st only: no slot of it falls due while the module's service runs (every five
    # minutes, as before, fired a 'classic' run into the other tests' listings)
    bobs = _post(service, "bob", {"cron": "7 4 1 1 *", "suite": "classic"})
    assert bobs.status_code == 201, bobs.text
    url = f"{service.url}/schedules"

    def suites(owner: str) -> list[tuple[str, str]]:
        listed = httpx.get(url, headers=bearer(service.tokens[owner])).json()
        return [(s["owner"], s["suite"]) for s in listed["data"]]

    assert ("alice", "tiny") in suites("alice") and ("bob", "classic") not in suites("alice")
    assert {("alice", "tiny"), ("bob", "classic")} <= set(suites("root"))
    one = f"{url}/{schedule['id']}"
    refused = httpx.delete(one, headers=bearer(service.tokens["bob"]))
    assert refused.status_code == 403 and "another owner" in refused.json()["detail"]
    assert httpx.delete(one, headers=bearer(service.tokens["alice"])).status_code == 204
    assert httpx.delete(one, headers=bearer(service.tokens["alice"])).status_code == 404
    assert ("alice", "tiny") not in suites("alice")
    assert httpx.delete(f"{url}/{bobs.json()['id']}",
                        headers=bearer(service.tokens["bob"])).status_code == 204


def _run_row(schedule_id: uuid.UUID | None, owner: str, slot: datetime,
             **values: Any) -> BenchmarkRun:
    return BenchmarkRun(schedule_id=schedule_id, owner=owner, suite="tiny", slot=slot,
                        host=socket.gethostname(), service_pid=os.getpid(), **{
                            "status": BenchmarkRunStatus.finished, **values})


def test_runs_are_listed_by_owner_and_schedule(service: Service) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    slot = datetime(2026, 1, 1, 3, tzinfo=UTC)
    with open_database(service.settings.database_url)() as session:
        session.add_all([_run_row(first, "bob", slot, verdict=Verdict.ok, exit_code=0),
                         _run_row(first, "bob", slot + timedelta(days=1),
                                  verdict=Verdict.regressed, exit_code=1),
                         _run_row(second, "alice", slot, verdict=Verdict.error, exit_code=2)])
        session.commit()
    runs = f"{service.url}/benchmarks/runs"
    bob = httpx.get(runs, headers=bearer(service.tokens["bob"]), params={"limit": 1}).json()
    assert bob["count"] == 2 and [r["verdict"] for r in bob["data"]] == ["regressed"]
    mine = httpx.get(runs, headers=bearer(service.tokens["bob"]),
                     params={"schedule_id": str(second)}).json()
    assert mine == {"data": [], "count": 0}
    admin = httpx.get(runs, headers=bearer(service.tokens["root"]),
                      params={"schedule_id": str(second)}).json()
    assert [(r["owner"], r["verdict"], r["exit_code"]) for r in admin["data"]] == [
        ("alice", "error", 2)]
    assert httpx.get(runs, headers=bearer(service.tokens["bob"]),
                     params={"limit": 0}).status_code == 422


def test_a_run_left_running_by_a_dead_service_is_finished_as_interrupted(
        service: Service) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    with open_database(service.settings.database_url)() as session:
        run = _run_row(uuid.uuid4(), "alice", datetime(2026, 1, 2, 3, tzinfo=UTC),
                       status=BenchmarkRunStatus.running, pid=dead)
        run.service_pid = dead
        session.add(run)
        session.commit()
        run_id = run.id

    def finished() -> BenchmarkRun | None:
        with open_database(service.settings.database_url)() as session:
            row = session.get(BenchmarkRun, run_id)
            return row if row is not None and row.status == "finished" else None

    wait_for(finished, 30, "the interrupted run to be reconciled")
    row = finished()
    assert row is not None and row.verdict == "error" and row.summary is not None
    assert row.summary.startswith("interrupted")


def test_of_the_slots_missed_only_the_latest_runs() -> None:
    moment = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    long_ago = datetime(2026, 3, 1, 3, tzinfo=UTC)
    assert slot_to_run(NIGHTLY, long_ago, moment) == datetime(2026, 3, 10, 3, tzinfo=UTC)
    soon = datetime(2026, 3, 10, 12, 29, 57, tzinfo=UTC)  # a first slot set off the cron
    assert slot_to_run(NIGHTLY, soon, moment) == soon


def test_a_schedule_that_skips_missed_slots_runs_only_slots_on_time() -> None:
    moment = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    long_ago = datetime(2026, 3, 1, 3, tzinfo=UTC)
    assert slot_to_run(NIGHTLY, long_ago, moment, "skip") is None
    on_time = datetime(2026, 3, 10, 3, 0, 30, tzinfo=UTC)  # 30 s after the 03:00 slot
    assert slot_to_run(NIGHTLY, datetime(2026, 3, 10, 3, tzinfo=UTC), on_time,
                       "skip") == datetime(2026, 3, 10, 3, tzinfo=UTC)


def _bench(home: Path, *arguments: str) -> str:
    result = subprocess.run([sys.executable, "-m", "service.cli", "bench", *arguments],
                            env={**os.environ, "OPTISTUDY_HOME": str(home)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _rows(settings: Settings, schedule_id: uuid.UUID) -> list[BenchmarkRun]:
    with open_database(settings.database_url)() as session:
        return list(session.scalars(select(BenchmarkRun)
                                    .where(BenchmarkRun.schedule_id == schedule_id)))


def _schedule(settings: Settings, schedule_id: uuid.UUID, **values: Any) -> Schedule:
    with open_database(settings.database_url)() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        for name, value in values.items():
            setattr(schedule, name, value)
        session.commit()
        return schedule


@pytest.mark.slow
def test_a_slot_fires_records_its_verdict_and_runs_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    home = tmp_path / "home"
    isolate(home, monkeypatch, shared_ray)
    suite_file = _write_suite(home)
    stored = re.search(r"^run (\S+) stored in", _bench(home, "run", str(suite_file)), re.M)
    assert stored is not None
    _bench(home, "baseline", str(suite_file), "--from", stored[1])
    first = settings_for(home, scheduler_seconds=0.2)
    second = settings_for(home, scheduler_seconds=0.2)
    alice = token(first, "alice")
    with serving(first) as url, serving(second) as other_url:   # two services, one database
        created = httpx.post(f"{url}/schedules", json={"cron": NIGHTLY, "suite": "tiny"},
                             headers=bearer(alice))
        assert created.status_code == 201, created.text
        schedule_id = uuid.UUID(created.json()["id"])
        soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        _schedule(first, schedule_id, next_slot=soon)

        def runs() -> list[dict[str, Any]]:
            listed = httpx.get(f"{other_url}/benchmarks/runs", headers=bearer(alice),
                               params={"schedule_id": str(schedule_id)}).json()
            return list(listed["data"])

        wait_for(lambda: runs() and runs()[0]["status"] == "finished", 150,
                 "the scheduled run to finish")
        [run] = runs()
        assert run["verdict"] == "ok" and run["exit_code"] == 0, run["summary"]
        assert datetime.fromisoformat(run["slot"]) == soon
        assert run["bench_run_id"] in BenchStore(Home(home), "tiny").run_ids()
        assert run["bench_run_id"] != stored[1]
        assert "verdict: UNCHANGED" in run["summary"], run["summary"]  # same code, same seeds
        advanced = _schedule(first, schedule_id).next_slot
        assert (advanced.hour, advanced.minute) == (3, 0) and advanced > soon
    assert len(_rows(first, schedule_id)) == 1
    # A restart that finds the slot due again (as if its advance were lost) runs it no more.
    _schedule(first, schedule_id, next_slot=soon)
    with serving(first):
        wait_for(lambda: _schedule(first, schedule_id).next_slot > soon, 30,
                 "the restarted scheduler to pass the slot")
    [row] = _rows(first, schedule_id)
    assert row.slot == soon and row.verdict == "ok"
