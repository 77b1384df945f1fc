"""Scheduled regression benchmarks: each enabled schedule whose next slot has come is claimed
(a ``BenchmarkRun`` row; the unique (schedule, slot) makes the claim once-only across
restarts and service instances) and run as ``python -m service.cli bench run SUITE --check
[--baseline RUN]`` in a process of its own session, with the service's environment. Its exit
code is the verdict: 0 ok, 1 regressed, anything else error.

Cron expressions have 5 fields and are read in UTC. Slots missed while no service ran are
not all made up: at start only the latest missed slot runs (one catch-up), older ones are
skipped. A run left ``running`` by a service that died on this host is finished as error
("interrupted") once neither that service nor the bench process is alive."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.drivers import child_environment
from service.models import BenchmarkRun, BenchmarkRunStatus, Schedule, Verdict, now
from service.settings import Settings
from studies import benchmarks
from studies.study.home import process_alive
from studies.study.names import check_name

log = logging.getLogger(__name__)

MAX_YEARS = 5
"""A cron expression must fire within this many years (``0 0 31 2 *`` never does)."""
SUITES_DIR = "suites"
"""Suite files a schedule may name, in the data dir: ``suites/NAME.yaml``."""
SUMMARY_CHARS = 4000
_RUN_LINE = re.compile(r"^run (\S+) stored in ", re.MULTILINE)
_VERDICTS = {0: Verdict.ok, 1: Verdict.regressed}


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` cannot be a schedule (None: it can)."""
    allowed = "5 fields: minute hour day-of-month month day-of-week, in UTC, e.g. '0 3 * * *'"
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        return f"{cron!r} is not a cron expression (allowed: {allowed})"
    if next_fire(cron, now()) is None:
        return f"{cron!r} never fires within {MAX_YEARS} years (allowed: {allowed})"
    return None


def next_fire(cron: str, after: datetime) -> datetime | None:
    """The first fire time of ``cron`` strictly after ``after``; None if none within
    ``MAX_YEARS`` years."""
    try:
        fire: datetime = croniter(cron, after.astimezone(UTC),
                                  max_years_between_matches=MAX_YEARS).get_next(datetime)
    except (ValueError, KeyError, ArithmeticError):  # CroniterBadDateError is a ValueError
        return None
    if (fire - after).days > 366 * MAX_YEARS:
        return None
    return fire.astimezone(UTC)


def latest_fire(cron: str, at_or_before: datetime) -> datetime | None:
    """The last fire time of ``cron`` at or before ``at_or_before``."""
    try:
        moment = at_or_before.astimezone(UTC)
        iterator = croniter(cron, moment, max_years_between_matches=MAX_YEARS)
        previous: datetime = iterator.get_prev(datetime)
    except (ValueError, KeyError, ArithmeticError):
        return None
    following = next_fire(cron, previous)
    return following if following is not None and following <= moment else previous


MISSED_AFTER = timedelta(minutes=1)
"""A slot still unclaimed this long after its time was missed (no service was running)."""


def slot_to_run(cron: str, next_slot: datetime, moment: datetime,
                missed: str = "run_once") -> datetime | None:
    """The slot to run when ``next_slot`` has come by ``moment``: the latest slot due
    (``next_slot`` itself if none later; older missed slots never run). If that slot was
    missed (more than ``MISSED_AFTER`` ago), ``missed`` decides: ``run_once`` runs it now,
    ``skip`` runs nothing (None) and waits for the next slot."""
    latest = latest_fire(cron, moment)
    slot = latest if latest is not None and latest > next_slot else next_slot
    if missed == "skip" and moment - slot > MISSED_AFTER:
        return None
    return slot


def suite_reference(home: Path, name: str) -> str:
    """What ``optistudy bench run`` is given for the suite ``name``: the file
    ``suites/NAME.yaml`` in the data dir, else a shipped suite's name; a ValueError for any
    other (the name is checked, so it cannot leave the data dir)."""
    check_name(name)
    path = home / SUITES_DIR / f"{name}.yaml"
    if path.is_file():
        return str(path)
    if name in benchmarks.names():
        return name
    raise ValueError(f"unknown suite {name!r} (allowed: a shipped suite, "
                     f"{', '.join(benchmarks.names())}, or a file {SUITES_DIR}/NAME.yaml in "
                     "the data dir)")


class Scheduler:
    """Claims due slots and runs them, each in a thread waiting on its bench process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self.host = socket.gethostname()[:200]
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def loop(self, stop: threading.Event) -> None:
        """Reconcile, then tick every ``scheduler_seconds`` until ``stop``."""
        while True:
            try:
                self.reconcile()
                self.tick()
            except Exception:
                log.exception("the benchmark scheduler failed; trying again")
            if stop.wait(self.settings.scheduler_seconds):
                return

    def reconcile(self) -> None:
        """Finish as interrupted the runs of this host left running by a dead service whose
        bench process is gone too (the runs of other hosts cannot be told; they are left)."""
        with self.sessions() as session:
            for run in session.scalars(select(BenchmarkRun).where(
                    BenchmarkRun.status == BenchmarkRunStatus.running,
                    BenchmarkRun.host == self.host)):
                with self._lock:
                    ours = run.id in self.running
                if ours or process_alive(run.service_pid) or process_alive(run.pid):
                    continue
                run.status, run.verdict = BenchmarkRunStatus.finished, Verdict.error
                run.finished_at = now()
                run.summary = ("interrupted: the service stopped while the run was going on "
                               "(its result, if any: 'optistudy bench list SUITE')")
                log.warning("benchmark run %s (slot %s) was interrupted", run.id, run.slot)
            session.commit()

    def tick(self) -> list[int]:
        """Claim and start every due slot; the ids of the runs started."""
        moment = now()
        started = []
        with self.sessions() as session:
            due = list(session.scalars(select(Schedule.id).where(
                Schedule.enabled.is_(True), Schedule.next_slot <= moment)))
        for schedule_id in due:
            run_id = self._claim(schedule_id, moment)
            if run_id is not None:
                started.append(run_id)
        return started

    def _claim(self, schedule_id: object, moment: datetime) -> int | None:
        with self.sessions() as session:
            schedule = session.get(Schedule, schedule_id)
            if schedule is None or not schedule.enabled or schedule.next_slot > moment:
                return None
            slot = slot_to_run(schedule.cron, schedule.next_slot, moment, schedule.missed)
            if slot is None:
                log.warning("schedule %s: slots since %s were missed; skipped (missed: skip)",
                            schedule.id, schedule.next_slot)
                self._advance(schedule, next_fire(schedule.cron, moment))
                session.commit()
                return None
            if slot > schedule.next_slot:
                log.warning("schedule %s: slots from %s to before %s were missed; running "
                            "only %s", schedule.id, schedule.next_slot, slot, slot)
            following = next_fire(schedule.cron, max(slot, moment))
            run = BenchmarkRun(schedule_id=schedule.id, owner=schedule.owner,
                               suite=schedule.suite, slot=slot,
                               status=BenchmarkRunStatus.running, host=self.host,
                               service_pid=os.getpid())
            session.add(run)
            self._advance(schedule, following)
            try:
                session.commit()
            except IntegrityError:  # another service (or an earlier life of this one) has it
                session.rollback()
                schedule = session.get(Schedule, schedule_id)
                if schedule is not None and schedule.next_slot <= slot:
                    self._advance(schedule, following)
                    session.commit()
                return None
            suite, baseline, run_id = schedule.suite, schedule.baseline, run.id
        threading.Thread(target=self._run, name=f"optistudy-bench-{run_id}", daemon=True,
                         args=(run_id, suite, baseline)).start()
        return run_id

    @staticmethod
    def _advance(schedule: Schedule, following: datetime | None) -> None:
        if following is None:  # cannot happen for a checked expression; never loop on it
            schedule.enabled = False
        else:
            schedule.next_slot = following

    def _run(self, run_id: int, suite: str, baseline: str | None) -> None:
        """Run the bench process of ``run_id`` and record its outcome."""
        log_dir = self.settings.home / "schedule-logs"
        exit_code: int | None = None
        try:
            reference = suite_reference(self.settings.home, suite)
            command = [sys.executable, "-m", "service.cli", "bench", "run", reference,
                       "--check"] + ([] if baseline is None else ["--baseline", baseline])
            log_dir.mkdir(parents=True, exist_ok=True)
            log_file = log_dir / f"{run_id}.log"
            environment = child_environment(self.settings.home)
            with open(log_file, "wb") as output:
                process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=environment,
                                           start_new_session=True)
                with self._lock:
                    self.running[run_id] = process
                self._update(run_id, pid=process.pid)
                exit_code = process.wait()
            text = log_file.read_text(errors="replace")
        except Exception as error:  # recorded, never raised into the scheduler
            log.exception("benchmark run %s failed to run", run_id)
            text = f"the bench run could not be started: {error}"
        finally:
            with self._lock:
                self.running.pop(run_id, None)
        found = _RUN_LINE.findall(text)
        verdict = Verdict.error if exit_code is None else _VERDICTS.get(exit_code, Verdict.error)
        self._update(run_id, status=BenchmarkRunStatus.finished, finished_at=now(),
                     exit_code=exit_code, verdict=verdict,
                     bench_run_id=found[-1] if found else None,
                     summary=text[-SUMMARY_CHARS:])

    def _update(self, run_id: int, **values: object) -> None:
        with self.sessions() as session:
            run = session.get(BenchmarkRun, run_id)
            if run is not None:
                for name, value in values.items():
                    setattr(run, name, value)
                session.commit()
