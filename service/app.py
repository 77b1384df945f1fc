"""The HTTP service: ``create_app(settings)`` builds it; ``optistudy serve`` runs it."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api import benchmarks, health, schedules, studies
from service.api.limits import BodyLimit
from service.database import open_database
from service.execution import Execution
from service.scheduler import Scheduler
from service.settings import Settings
from service.stores import open_stores
from studies.study.home import Home

log = logging.getLogger(__name__)


def _watch(execution: Execution, sessions: sessionmaker[Session], every: float,
           stop: threading.Event) -> None:
    """Reconcile the studies with their drivers every ``every`` seconds until ``stop``."""
    while not stop.wait(every):
        try:
            with sessions() as session:
                execution.reconcile(session)
        except Exception:
            log.exception("reconciling the studies failed; trying again")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment). At start it migrates
    the database and reconciles every study it believes queued or running with its driver;
    then it checks them every ``reconcile_seconds``. Drivers outlive the service. The
    benchmark scheduler checks the schedules every ``scheduler_seconds``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sessions = open_database(settings.database_url)
        open_stores(Home(settings.home))
        execution = Execution(settings)
        with sessions() as session:
            execution.reconcile(session)
        app.state.sessions, app.state.execution = sessions, execution
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, name="optistudy-reconcile", daemon=True,
                                   args=(execution, sessions, settings.reconcile_seconds, stop))
        watcher.start()
        scheduler = threading.Thread(target=Scheduler(settings, sessions).loop, args=(stop,),
                                     name="optistudy-scheduler", daemon=True)
        scheduler.start()
        yield
        stop.set()
        watcher.join(timeout=30)
        scheduler.join(timeout=30)

    app = FastAPI(title="optistudy", lifespan=lifespan,
                  description="Submit, watch and cancel optistudy studies; read their reports. "
                              "Every route but /health needs a bearer token.")
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(studies.router)
    app.include_router(schedules.router)
    app.include_router(benchmarks.router)
    return app
