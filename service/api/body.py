"""Reading a request body as data: capped in size, JSON or YAML by its content type, and
bounded in the number of values (YAML aliases can make a small file a huge tree)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import HTTPException, Request, status

from studies.specs import load_yaml

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
MAX_VALUES = 100_000
MAX_STRING = 6000
"""The longest string (value or key) a body may hold."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes ``limit`` bytes (whatever Content-Length said)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"the request body is larger than {limit} bytes")
    return bytes(body)


def parse_mapping(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON or YAML mapping; 415 for another content type, 422 for anything but a mapping
    of at most ``MAX_VALUES`` values."""
    media = content_type.split(";")[0].strip().lower()
    if media not in JSON_TYPES + YAML_TYPES:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"content type {media or '(none)'!r} is not accepted (allowed: "
                            f"{', '.join(JSON_TYPES + YAML_TYPES)})")
    try:
        text = body.decode()
        data = json.loads(text) if media in JSON_TYPES else load_yaml(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as error:
        kind = "JSON" if media in JSON_TYPES else "YAML"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [f"(body): not valid {kind} ({_first_line(error)})"]) from None
    if not isinstance(data, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            ["(body): the spec must be a mapping of fields"])
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [f"(body): more than {MAX_VALUES} values (allowed: a spec of at "
                             f"most {MAX_VALUES}, aliases expanded)"])
    long = _long_strings(data, MAX_STRING)
    if long:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, long)
    return data


def _long_strings(data: dict[str, Any], limit: int) -> list[str]:
    """A problem, with its field path, for each string (or key) longer than ``limit``."""
    problems: list[str] = []
    pending: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while pending:
        path, value = pending.pop()
        where = ".".join(path) or "(body)"
        if isinstance(value, str) and len(value) > limit:
            problems.append(f"{where}: a value of {len(value)} characters (allowed: at most "
                            f"{limit})")
        elif isinstance(value, dict):
            for key, item in value.items():
                if len(str(key)) > limit:
                    problems.append(f"{where}: a name of {len(str(key))} characters (allowed: "
                                    f"at most {limit})")
                else:
                    pending.append(((*path, str(key)), item))
        elif isinstance(value, list):
            pending.extend(((*path, str(index)), item) for index, item in enumerate(value))
    return sorted(problems)


def _count_values(data: Any, limit: int) -> int:
    """How many values ``data`` holds, counting a shared (aliased) one each time it is used;
    stops counting past ``limit``."""
    count, pending = 0, [data]
    while pending and count <= limit:
        value = pending.pop()
        count += 1
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return count


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
