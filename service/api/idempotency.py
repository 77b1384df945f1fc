"""The ``Idempotency-Key`` header of ``POST /studies`` and ``POST /schedules``: a retry with
the same key and the same body gets what the first request made (200, the same id, nothing
started twice); the same key with another body is refused (422, naming the header). Keys
are per owner and per route, kept with the SHA-256 of the request's data."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Annotated, Any

from fastapi import Header, HTTPException, status
from sqlalchemy.orm import Session

from service import crud

HEADER = "Idempotency-Key"
MAX_LENGTH = 200
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_LENGTH}}}")
ALLOWED = f"1 to {MAX_LENGTH} printable ASCII characters without spaces, e.g. a UUID"

KeyHeader = Annotated[str | None, Header(
    alias=HEADER, description=f"makes a retry safe: the same key with the same body gets what "
    f"the first request made (200) and nothing is done twice; the same key with another body "
    f"is refused (422). {ALLOWED}; per owner.")]


def checked(key: str | None) -> str | None:
    """``key`` if it is a valid key (None: no header), else 422 naming the header."""
    if key is not None and not _KEY.fullmatch(key):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [f"{HEADER}: {key[:40]!r} is not a valid key (allowed: {ALLOWED})"])
    return key


def request_hash(data: dict[str, Any]) -> str:
    """The SHA-256 of the request's data (JSON or YAML alike), keys sorted."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def made_before(session: Session, *, owner: str, route: str, key: str | None,
                digest: str) -> uuid.UUID | None:
    """The id of what ``key`` made before on ``route`` (None: nothing); 422 naming the header
    when the key came with another request."""
    if key is None:
        return None
    record = crud.idempotency_key(session, owner=owner, route=route, key=key)
    if record is None:
        return None
    if record.request_hash != digest:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            f"{HEADER}: the key {key[:40]!r} was used with another request body (allowed: a "
            "new key for a new request; the same key only to retry the same request)"])
    return record.resource_id
