"""What endpoints depend on: the settings, a database session, the caller (from the bearer
token) and the execution of studies; as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service import crud
from service.execution import Execution
from service.settings import Settings

ADMIN_OWNER = "admin"
"""The owner name of the settings' admin token."""


@dataclass(frozen=True)
class Owner:
    """Who calls: the token's owner; an admin sees every owner's studies."""

    name: str
    admin: bool


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_execution(request: Request) -> Execution:
    execution: Execution = request.app.state.execution
    return execution


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ExecutionDep = Annotated[Execution, Depends(get_execution)]
_bearer = HTTPBearer(auto_error=False, description="a token from 'optistudy token create'")


def current_owner(session: SessionDep, settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(_bearer)]) -> Owner:
    """The caller of a valid, unrevoked bearer token; 401 for anyone else."""
    if credentials is not None:
        secret = credentials.credentials
        admin = settings.admin_token
        if admin is not None and hmac.compare_digest(secret.encode(),
                                                     admin.get_secret_value().encode()):
            return Owner(ADMIN_OWNER, admin=True)
        token = crud.active_token(session, secret=secret)
        if token is not None:
            return Owner(token.owner, admin=token.admin)
    raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                        "a valid bearer token is needed (Authorization: Bearer TOKEN)",
                        headers={"WWW-Authenticate": "Bearer"})


CurrentOwner = Annotated[Owner, Depends(current_owner)]
