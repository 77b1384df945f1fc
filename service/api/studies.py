"""``/studies``: submit a study spec, list and watch studies, cancel one, read its report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from service import crud, progress
from service.api import idempotency
from service.api.body import JSON_TYPES, YAML_TYPES, parse_mapping, read_capped
from service.api.deps import CurrentOwner, ExecutionDep, Owner, SessionDep, SettingsDep
from service.execution import Conflict
from service.models import Study
from service.schemas import (
    STUDY_CREATE_SCHEMA,
    Problems,
    StudiesPublic,
    StudiesQuery,
    StudyDetail,
    StudyPublic,
)
from studies.specs import SpecError, parse
from studies.study import StudySpec

router = APIRouter(prefix="/studies", tags=["studies"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": Problems, "description": "no valid bearer token"},
}
_ONE_STUDY: dict[int | str, dict[str, Any]] = {
    **_REFUSED,
    status.HTTP_403_FORBIDDEN: {"model": Problems, "description": "another owner's study"},
    status.HTTP_404_NOT_FOUND: {"model": Problems, "description": "no such study"},
}
_MODULE_REFUSED = ("'module' imports Python code on the service's machines (allowed over HTTP: "
                   "mlp, perceptron; an operator may set OPTISTUDY_ALLOW_MODULE_MODELS=true)")


async def _spec_data(owner: CurrentOwner, request: Request,
                     settings: SettingsDep) -> dict[str, Any]:
    """The request body as data (after the caller is known: no body is read for nobody)."""
    body = await read_capped(request, settings.max_body_bytes)
    return parse_mapping(body, request.headers.get("content-type", ""))


def _module_models(spec: StudySpec) -> list[str]:
    """The spec's fields that name a user's module as the model."""
    found = [f"tasks.{index}.model.type: {_MODULE_REFUSED}"
             for index, task in enumerate(spec.tasks)
             if task.model is not None and task.model.type == "module"]
    for index, arm in enumerate(spec.arms):
        model = arm.overrides.get("model")
        if isinstance(model, dict) and model.get("type") == "module":
            found.append(f"arms.{index}.overrides.model.type: {_MODULE_REFUSED}")
    return found


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    **_REFUSED,
    status.HTTP_200_OK: {"model": StudyPublic, "description": "a retry with the same "
                         "Idempotency-Key and body: the study the first request made"},
    status.HTTP_409_CONFLICT: {"model": Problems, "description": "the study name is taken"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"model": Problems, "description": "body too large"},
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"model": Problems,
                                             "description": "neither JSON nor YAML"},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {"model": Problems,
                                            "description": "an invalid spec: each problem "
                                                           "with its field path"},
}, openapi_extra={"requestBody": {"required": True, "content": {
    media: {"schema": STUDY_CREATE_SCHEMA} for media in JSON_TYPES + YAML_TYPES}}})
def create_study(owner: CurrentOwner, data: Annotated[dict[str, Any], Depends(_spec_data)],
                 session: SessionDep, settings: SettingsDep, execution: ExecutionDep,
                 response: Response,
                 idempotency_key: idempotency.KeyHeader = None) -> StudyPublic:
    """Submit a study spec (JSON, or YAML with Content-Type application/yaml); its driver
    starts at once. With an ``Idempotency-Key``, a retry of the same request gets the same
    study (200) and never a second driver."""
    key = idempotency.checked(idempotency_key)
    digest = idempotency.request_hash(data)
    idempotency.made_before(session, owner=owner.name, route="studies", key=key,
                            digest=digest)  # 422 for a key used with another body
    try:
        spec = parse(StudySpec, data, "the request body")
    except SpecError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, error.problems) from None
    refused = [] if settings.allow_module_models else _module_models(spec)
    if refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, refused)
    try:
        study, created = execution.submit(session, spec=spec, owner=owner.name,
                                          key=None if key is None else (key, digest))
    except Conflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return StudyPublic.model_validate(study)


@router.get("", responses=_REFUSED)
def list_studies(owner: CurrentOwner, session: SessionDep,
                 query: Annotated[StudiesQuery, Query()]) -> StudiesPublic:
    """The caller's studies (an admin's: everyone's), newest first, a page at a time."""
    studies, count = crud.list_studies(session, owner=None if owner.admin else owner.name,
                                       status=query.status, offset=query.offset,
                                       limit=query.limit)
    return StudiesPublic(data=[StudyPublic.model_validate(s) for s in studies], count=count)


def _owned(session: SessionDep, owner: Owner, study_id: uuid.UUID) -> Study:
    study = crud.get_study(session, study_id=study_id)
    if study is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study has the id {study_id}")
    if not owner.admin and study.owner != owner.name:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"study {study_id} belongs to another owner")
    return study


@router.get("/{study_id}", responses=_ONE_STUDY)
def read_study(study_id: uuid.UUID, owner: CurrentOwner, session: SessionDep,
               execution: ExecutionDep) -> StudyDetail:
    """A study's status, progress per (task, arm) with the best trial so far, and its MLflow
    experiment."""
    study = _owned(session, owner, study_id)
    spec = StudySpec.model_validate(study.spec)
    return StudyDetail.model_validate({
        **StudyPublic.model_validate(study).model_dump(), "spec": study.spec,
        "objective_metric": spec.objective.targets().metrics[0],
        "progress": progress.arms(execution.home, spec),
        "mlflow": progress.mlflow_experiment(execution.home, study.name)})


@router.post("/{study_id}/cancel", responses={
    **_ONE_STUDY,
    status.HTTP_409_CONFLICT: {"model": Problems, "description": "the study has ended"}})
def cancel_study(study_id: uuid.UUID, owner: CurrentOwner, session: SessionDep,
                 execution: ExecutionDep) -> StudyPublic:
    """Stop a queued or running study: its driver is stopped, its running trials failed and
    its running MLflow runs ended KILLED."""
    study = _owned(session, owner, study_id)
    try:
        return StudyPublic.model_validate(execution.cancel(session, study=study))
    except Conflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


@router.get("/{study_id}/report", response_model=None, responses={
    **_ONE_STUDY,
    status.HTTP_200_OK: {"content": {"text/markdown": {"schema": {"type": "string"}}},
                         "description": "the report, in Markdown"},
    status.HTTP_409_CONFLICT: {"model": Problems,
                               "description": "the study is running, or no trial finished"}})
def read_report(study_id: uuid.UUID, owner: CurrentOwner, session: SessionDep,
                execution: ExecutionDep) -> PlainTextResponse:
    """Each arm's best configuration re-run on fresh paired seeds and compared (built once
    the study has ended, then kept)."""
    study = _owned(session, owner, study_id)
    try:
        markdown = execution.report(study)
    except Conflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return PlainTextResponse(markdown, media_type="text/markdown")
