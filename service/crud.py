"""Plain create / read / update functions on the service database."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import (
    IN_FLIGHT,
    BenchmarkRun,
    IdempotencyKey,
    Schedule,
    Study,
    StudyStatus,
    Token,
)
from service.tokens import new_token, token_hash


def create_token(session: Session, *, owner: str, admin: bool = False) -> tuple[Token, str]:
    """A new token for ``owner``: the stored record and the token itself (not stored)."""
    secret = new_token()
    token = Token(owner=owner, token_hash=token_hash(secret), admin=admin)
    session.add(token)
    session.commit()
    return token, secret


def active_token(session: Session, *, secret: str) -> Token | None:
    """The unrevoked token whose hash is that of ``secret``."""
    return session.scalar(select(Token).where(Token.token_hash == token_hash(secret),
                                              Token.revoked.is_(False)))


def revoke_token(session: Session, *, token_id: int) -> Token | None:
    token = session.get(Token, token_id)
    if token is not None:
        token.revoked = True
        session.commit()
    return token


def list_tokens(session: Session) -> list[Token]:
    return list(session.scalars(select(Token).order_by(Token.id)))


def count_active_tokens(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Token)
                          .where(Token.revoked.is_(False))) or 0


def create_study(session: Session, *, name: str, owner: str, spec: dict[str, Any],
                 driver_kind: str) -> Study:
    """A queued study, flushed (so a name already taken fails here) but not committed."""
    study = Study(name=name, owner=owner, spec=spec, driver_kind=driver_kind,
                  status=StudyStatus.queued)
    session.add(study)
    session.flush()
    return study


def get_study(session: Session, *, study_id: uuid.UUID) -> Study | None:
    return session.get(Study, study_id)


def study_by_name(session: Session, *, name: str) -> Study | None:
    return session.scalar(select(Study).where(Study.name == name))


def list_studies(session: Session, *, owner: str | None, status: StudyStatus | None,
                 offset: int, limit: int) -> tuple[list[Study], int]:
    """A page of studies, newest first, and how many there are in all; ``owner`` None: every
    owner's."""
    query = select(Study)
    if owner is not None:
        query = query.where(Study.owner == owner)
    if status is not None:
        query = query.where(Study.status == status)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Study.created_at.desc(), Study.name)
                           .offset(offset).limit(limit))
    return list(page), count


def studies_in_flight(session: Session) -> list[Study]:
    """The studies the database believes queued or running."""
    return list(session.scalars(select(Study).where(Study.status.in_(IN_FLIGHT))))


def idempotency_key(session: Session, *, owner: str, route: str,
                    key: str) -> IdempotencyKey | None:
    """What ``owner`` made with ``key`` on ``route`` (studies or schedules), if anything."""
    return session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.owner == owner, IdempotencyKey.route == route, IdempotencyKey.key == key))


def add_idempotency_key(session: Session, *, owner: str, route: str, key: str,
                        request_hash: str, resource_id: uuid.UUID) -> IdempotencyKey:
    """Record ``key`` with what it made, flushed (so a key already used fails here) but not
    committed: the caller commits it with what it made."""
    record = IdempotencyKey(owner=owner, route=route, key=key, request_hash=request_hash,
                            resource_id=resource_id)
    session.add(record)
    session.flush()
    return record


def create_schedule(session: Session, *, owner: str, cron: str, suite: str,
                    baseline: str | None, missed: str, next_slot: datetime,
                    key: tuple[str, str] | None = None) -> Schedule:
    """A schedule, committed with its idempotency key and request hash (``key``)."""
    schedule = Schedule(owner=owner, cron=cron, suite=suite, baseline=baseline, missed=missed,
                        enabled=True, next_slot=next_slot)
    session.add(schedule)
    session.flush()
    if key is not None:
        add_idempotency_key(session, owner=owner, route="schedules", key=key[0],
                            request_hash=key[1], resource_id=schedule.id)
    session.commit()
    return schedule


def list_schedules(session: Session, *, owner: str | None) -> list[Schedule]:
    """Every schedule of ``owner`` (None: of every owner), oldest first."""
    query = select(Schedule)
    if owner is not None:
        query = query.where(Schedule.owner == owner)
    return list(session.scalars(query.order_by(Schedule.created_at, Schedule.id)))


def list_benchmark_runs(session: Session, *, owner: str | None,
                        schedule_id: uuid.UUID | None, offset: int,
                        limit: int) -> tuple[list[BenchmarkRun], int]:
    """A page of scheduled benchmark runs, newest slot first, and how many there are."""
    query = select(BenchmarkRun)
    if owner is not None:
        query = query.where(BenchmarkRun.owner == owner)
    if schedule_id is not None:
        query = query.where(BenchmarkRun.schedule_id == schedule_id)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(BenchmarkRun.slot.desc(), BenchmarkRun.id.desc())
                           .offset(offset).limit(limit))
    return list(page), count
