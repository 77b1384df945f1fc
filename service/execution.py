"""Submitting, cancelling and watching studies: the database's view of every study kept in
line with the real state of its driver (checked at start and then every few seconds)."""

from __future__ import annotations

import logging
import threading
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import crud
from service.drivers import Driver, LocalDrivers, RayJobs
from service.models import IN_FLIGHT, Study, StudyStatus, now
from service.settings import Settings
from studies.study import StudySpec, report, runner
from studies.study.cancel import end_running
from studies.study.home import Home
from studies.study.ledger import experiment_name
from studies.study.recording import tracking_client

log = logging.getLogger(__name__)


class Conflict(Exception):
    """The request cannot be done in the study's present state (HTTP 409)."""


class Execution:
    """The drivers of the service's studies: local processes, or Ray Jobs when
    ``ray_address`` is set."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = Home(settings.home)
        self.drivers: dict[str, Driver] = {"local": LocalDrivers(self.home)}
        if settings.ray_address:
            self.drivers["ray-job"] = RayJobs(settings.ray_address, self.home,
                                              grace_seconds=settings.cancel_grace_seconds)
        self.driver = self.drivers["ray-job" if settings.ray_address else "local"]
        self.lock = threading.Lock()
        self.report_lock = threading.Lock()

    def submit(self, session: Session, *, spec: StudySpec, owner: str,
               key: tuple[str, str] | None = None) -> tuple[Study, bool]:
        """Register ``spec`` for ``owner`` and start its driver; returns the study and
        whether it is new. ``key``: an idempotency key and its request's hash, committed with
        the study; a key ``owner`` used already gives the study it made (its driver started
        if a crash left it without one).

        Crash-safe: the study (with its key) is committed before its folder is written or
        its driver started; a study left queued without a driver is started by the next
        retry or reconcile, which first looks for a driver already running it."""
        with self.lock:
            if key is not None:
                made = crud.idempotency_key(session, owner=owner, route="studies", key=key[0])
                if made is not None:
                    return self._resumed(session, made.resource_id), False
            taken = f"the study name {spec.name!r} is taken (allowed: a name no other study " \
                    "has)"
            if crud.study_by_name(session, name=spec.name) is not None:
                raise Conflict(taken)
            try:
                if runner.registered(spec, self.home):
                    raise Conflict(f"the data dir holds a study named {spec.name!r} already "
                                   "(one run with the CLI): choose another name")
            except ValueError as error:
                raise Conflict(str(error)) from None
            try:
                study = crud.create_study(session, name=spec.name, owner=owner,
                                          spec=spec.model_dump(mode="json"),
                                          driver_kind=self.driver.kind)
                if key is not None:
                    crud.add_idempotency_key(session, owner=owner, route="studies", key=key[0],
                                             request_hash=key[1], resource_id=study.id)
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(taken) from None
            self._admit(session)
            session.commit()
            return study, True

    def _resumed(self, session: Session, study_id: uuid.UUID) -> Study:
        study = crud.get_study(session, study_id=study_id)
        if study is None:
            raise Conflict(f"the study {study_id} made with this key is gone")
        if study.status in IN_FLIGHT and study.driver_id is None:
            self._admit(session)
            session.commit()
        return study

    def _admit(self, session: Session) -> None:
        """Start the drivers of queued studies, oldest first, while fewer than
        ``max_running_studies`` run; the others stay queued until a driver ends. A driver
        found already running a queued study (the service died between starting it and
        recording it) is adopted whatever the count: it runs anyway."""
        flight = crud.studies_in_flight(session)
        queued = sorted((s for s in flight if s.driver_id is None), key=lambda s: s.created_at)
        for study in queued:
            driver = self.drivers.get(study.driver_kind)
            found = driver.find(study.name) if driver is not None else None
            if found is not None:
                study.driver_id = found
                self._reconcile(study)
        driving = sum(study.driver_id is not None for study in flight)
        for study in queued:
            if driving >= self.settings.max_running_studies:
                return
            if study.driver_id is None:
                self._start(study)
                driving += study.driver_id is not None

    def _start(self, study: Study) -> None:
        """Start the driver of a committed study that has none running (``_admit`` looked
        for one, and adopts what it finds): register its folder and launch one."""
        driver = self.drivers.get(study.driver_kind)
        if driver is None:
            return  # a Ray Job while the service is not pointed at a cluster: left queued
        try:
            spec = StudySpec.model_validate(study.spec)
            runner.start(spec, self.home)  # False: a crashed attempt wrote it already
            tracking_client(self.home)  # created now: drivers never race to create it
            running = driver.launch(spec.name)
        except (OSError, RuntimeError, ValueError) as error:
            study.status, study.finished_at = StudyStatus.failed, now()
            study.error = f"the driver could not be started: {error}"
            return
        study.driver_id = running
        self._reconcile(study)

    def cancel(self, session: Session, *, study: Study) -> Study:
        """Stop the study's driver, then fail its RUNNING Optuna trials and end its RUNNING
        MLflow runs as KILLED."""
        with self.lock:
            session.refresh(study)
            if study.status not in IN_FLIGHT:
                raise Conflict(f"study {study.name!r} is {study.status}: only a queued or "
                               "running study can be cancelled")
            driver = self.drivers.get(study.driver_kind)
            if driver is None:
                raise Conflict(f"study {study.name!r} runs as a {study.driver_kind}, which this "
                               "service cannot reach (set OPTISTUDY_RAY_ADDRESS)")
            if study.driver_id is not None:
                driver.stop(study.driver_id, self.settings.cancel_grace_seconds)
            if (self.home.study_dir(study.name) / "spec.json").exists():
                end_running(self.home, study.name)  # a queued study has nothing to end yet
            study.status, study.finished_at = StudyStatus.cancelled, now()
            session.commit()
        return study

    def reconcile(self, session: Session) -> None:
        """Bring every study the database believes queued or running in line with its
        driver: a driver that ended leaves its study completed, or failed (with nothing left
        RUNNING)."""
        with self.lock:
            for study in crud.studies_in_flight(session):
                try:
                    self._reconcile(study)
                except Exception:
                    log.exception("cannot check the driver of study %s", study.name)
            self._admit(session)  # into the places of the drivers that ended
            session.commit()

    def _reconcile(self, study: Study) -> None:
        driver = self.drivers.get(study.driver_kind)
        if driver is None:
            return  # a Ray Job while the service is not pointed at a cluster: left as it is
        if study.driver_id is None:
            return  # queued: started (or its driver adopted) by _admit
        phase = driver.phase(study.driver_id, study.name)
        if phase == "running" and study.status != StudyStatus.running:
            study.status, study.started_at = StudyStatus.running, now()
        elif phase == "succeeded":
            study.status, study.finished_at = StudyStatus.completed, now()
        elif phase == "failed":
            driver.stop(study.driver_id, 0.0)  # what a dead driver left of its session
            end_running(self.home, study.name)
            study.error = driver.error(study.driver_id, study.name)
            study.status, study.finished_at = StudyStatus.failed, now()

    def report(self, study: Study) -> str:
        """The study's report (Markdown): built once after the study ended, then kept."""
        if study.status in IN_FLIGHT:
            raise Conflict(f"study {study.name!r} is {study.status}: its report is built once "
                           "it has ended")
        spec = StudySpec.model_validate(study.spec)
        if all(runner.best_trial(spec, self.home, experiment_name(spec, task, arm)) is None
               for task in spec.tasks for arm in spec.arms):
            raise Conflict(f"no trial of study {study.name!r} has finished: nothing to report")
        path = self.home.study_dir(study.name) / "report.md"
        with self.report_lock:
            ended = study.finished_at.timestamp() if study.finished_at else float("inf")
            if not path.exists() or path.stat().st_mtime < ended:
                report.build(self.home, study.name, seeds=self.settings.report_seeds,
                             progress=log.info)
        return path.read_text()
