"""``/schedules``: a benchmark suite checked on a cron schedule by the service (see
``service.scheduler``); create, list and delete them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from service import crud, scheduler
from service.api import idempotency
from service.api.body import JSON_TYPES, YAML_TYPES, parse_mapping, read_capped
from service.api.deps import CurrentOwner, SessionDep, SettingsDep
from service.models import Schedule, now
from service.schemas import Problems, ScheduleCreate, SchedulePublic, SchedulesPublic
from service.settings import Settings
from studies.bench import BenchStore, load_suite
from studies.specs import SpecError, parse
from studies.study.home import Home

router = APIRouter(prefix="/schedules", tags=["benchmarks"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": Problems, "description": "no valid bearer token"},
}


async def _body(owner: CurrentOwner, request: Request, settings: SettingsDep) -> dict[str, Any]:
    """The request body as data (after the caller is known: no body is read for nobody)."""
    body = await read_capped(request, settings.max_body_bytes)
    return parse_mapping(body, request.headers.get("content-type", ""))


def _problems(create: ScheduleCreate, settings: Settings) -> list[str]:
    """What is wrong with the schedule, field by field."""
    problems = []
    cron = scheduler.cron_problem(create.cron)
    if cron is not None:
        problems.append(f"cron: {cron}")
    try:
        suite = load_suite(scheduler.suite_reference(settings.home, create.suite))
    except SpecError as error:
        return [*problems, *(f"suite: {problem}" for problem in error.problems)]
    except ValueError as error:
        return [*problems, f"suite: {error}"]
    if create.baseline is not None:
        try:
            BenchStore(Home(settings.home), suite.name).load(create.baseline)
        except ValueError as error:
            problems.append(f"baseline: {error}")
    return problems


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    **_REFUSED,
    status.HTTP_200_OK: {"model": SchedulePublic, "description": "a retry with the same "
                         "Idempotency-Key and body: the schedule the first request made"},
    status.HTTP_409_CONFLICT: {"model": Problems,
                               "description": "the Idempotency-Key's schedule was deleted"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"model": Problems, "description": "body too large"},
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"model": Problems,
                                             "description": "neither JSON nor YAML"},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {"model": Problems, "description": (
        "an invalid or never-firing cron expression, an unknown suite or baseline: each "
        "problem with its field")},
}, openapi_extra={"requestBody": {"required": True, "content": {
    media: {"schema": ScheduleCreate.model_json_schema()}
    for media in JSON_TYPES + YAML_TYPES}}})
def create_schedule(owner: CurrentOwner, data: Annotated[dict[str, Any], Depends(_body)],
                    session: SessionDep, settings: SettingsDep, response: Response,
                    idempotency_key: idempotency.KeyHeader = None) -> SchedulePublic:
    """Check a suite on a cron schedule (UTC): at each slot the service runs ``optistudy
    bench run SUITE --check`` against the baseline. A slot runs once, whatever restarts or
    service instances; of the slots missed while no service ran, only the latest runs, once
    (``missed: run_once``), or none (``missed: skip``). With an ``Idempotency-Key``, a retry
    of the same request gets the same schedule (200)."""
    key = idempotency.checked(idempotency_key)
    digest = idempotency.request_hash(data)
    made = idempotency.made_before(session, owner=owner.name, route="schedules", key=key,
                                   digest=digest)
    if made is not None:
        schedule = session.get(Schedule, made)
        if schedule is None:
            raise HTTPException(status.HTTP_409_CONFLICT, [
                f"{idempotency.HEADER}: the schedule {made} made with this key was deleted "
                "(allowed: a new key)"])
        response.status_code = status.HTTP_200_OK
        return SchedulePublic.model_validate(schedule)
    try:
        create = parse(ScheduleCreate, data, "the request body")
    except SpecError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, error.problems) from None
    problems = _problems(create, settings)
    first = scheduler.next_fire(create.cron, now())
    if problems or first is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            problems or ["cron: it never fires"])
    schedule = crud.create_schedule(session, owner=owner.name, cron=create.cron,
                                    suite=create.suite, baseline=create.baseline,
                                    missed=create.missed, next_slot=first,
                                    key=None if key is None else (key, digest))
    return SchedulePublic.model_validate(schedule)


@router.get("", responses=_REFUSED)
def list_schedules(owner: CurrentOwner, session: SessionDep) -> SchedulesPublic:
    """The caller's schedules (an admin's: everyone's), oldest first."""
    schedules = crud.list_schedules(session, owner=None if owner.admin else owner.name)
    return SchedulesPublic(data=[SchedulePublic.model_validate(s) for s in schedules],
                           count=len(schedules))


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses={
    **_REFUSED,
    status.HTTP_403_FORBIDDEN: {"model": Problems, "description": "another owner's schedule"},
    status.HTTP_404_NOT_FOUND: {"model": Problems, "description": "no such schedule"},
})
def delete_schedule(schedule_id: uuid.UUID, owner: CurrentOwner,
                    session: SessionDep) -> Response:
    """Stop scheduling: no slot runs after this (a run going on finishes); the runs made
    stay listed under /benchmarks/runs."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule has the id {schedule_id}")
    if not owner.admin and schedule.owner != owner.name:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"schedule {schedule_id} belongs to another owner")
    session.delete(schedule)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
