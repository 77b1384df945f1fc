"""The service database: API tokens, the studies submitted through the service, the
benchmark schedules with the runs they made, and the idempotency keys of their POSTs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class StudyStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


IN_FLIGHT = (StudyStatus.queued, StudyStatus.running)


def now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp, timezone-aware when read back (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Token(Base):
    """A bearer token: only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(default=False)
    revoked: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now)


class Study(Base):
    """A study submitted through the service and the driver that runs it: a local process
    (``driver_kind`` local, ``driver_id`` its pid) or a Ray Job (ray-job, the job id)."""

    __tablename__ = "studies"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[StudyStatus] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    driver_kind: Mapped[str] = mapped_column(String(16))
    driver_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a caller sent with a ``POST`` (``route``: studies or
    schedules): per owner, the SHA-256 of the request it came with and what that request
    made (``resource_id``). Committed in the same transaction as what it made, so a retry
    after any crash finds both or neither."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner", "route", "key",
                                       name="uq_idempotency_keys_owner_route_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    route: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now)


class Schedule(Base):
    """A benchmark suite checked on a cron schedule (UTC): at each slot the scheduler runs
    ``optistudy bench run SUITE --check [--baseline RUN]``. ``suite`` is a shipped suite's
    name or that of a file ``suites/NAME.yaml`` in the data dir; ``baseline`` None: the
    suite's promoted baseline. ``next_slot`` is the next fire time not yet claimed."""

    __tablename__ = "schedules"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    cron: Mapped[str] = mapped_column(String(100))
    suite: Mapped[str] = mapped_column(String(100))
    baseline: Mapped[str | None] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(default=True)
    missed: Mapped[str] = mapped_column(String(10), default="run_once")
    """Slots missed while no service ran: ``run_once`` (the latest, once) or ``skip``."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now)
    next_slot: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class BenchmarkRunStatus(StrEnum):
    running = "running"
    finished = "finished"


class Verdict(StrEnum):
    ok = "ok"
    regressed = "regressed"
    error = "error"


class BenchmarkRun(Base):
    """One slot of a schedule, run once: the row is inserted to claim the slot, and the
    unique (schedule_id, slot) makes a second claim (a restarted or a second service) fail.
    Runs outlive their schedule (``schedule_id`` is kept, not a foreign key).
    ``host``/``service_pid``/``pid``: where it runs, to tell a run whose service died."""

    __tablename__ = "benchmark_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "slot", name="uq_benchmark_runs_slot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    suite: Mapped[str] = mapped_column(String(100))
    slot: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[BenchmarkRunStatus] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    host: Mapped[str] = mapped_column(String(200))
    service_pid: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int | None] = mapped_column(Integer)
    bench_run_id: Mapped[str | None] = mapped_column(String(100))
    verdict: Mapped[Verdict | None] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[str | None] = mapped_column(Text)
