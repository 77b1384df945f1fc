"""A real service for tests: uvicorn on loopback (in a thread of the test process), a data
dir and SQLite database of the test's own, tokens made the way ``optistudy token create``
makes them, and the local Ray of each study's driver using a Ray token of the test's own."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from service import crud
from service.app import create_app
from service.database import open_database
from service.settings import Settings
from tests.ray_cluster import RayHead


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolate(home: Path, monkeypatch: pytest.MonkeyPatch, ray: RayHead | None = None) -> None:
    """The environment the service and its drivers see: the stores in ``home``; the drivers
    join the Ray head ``ray`` (``RAY_ADDRESS``), or each starts a local Ray with the test's
    Ray token (Ray 2.60 enables token auth for local clusters too)."""
    home.mkdir(parents=True, exist_ok=True)
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "OPTISTUDY_OPTUNA_STORAGE",
                 "OPTISTUDY_ADMIN_TOKEN", "OPTISTUDY_RAY_ADDRESS", "OPTISTUDY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if ray is not None:
        for name, value in ray.environment().items():
            monkeypatch.setenv(name, value)
        return
    token = home / "ray-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))


def settings_for(home: Path, **changes: Any) -> Settings:
    return Settings(home=home, port=free_port(), **changes)


def token(settings: Settings, owner: str, *, admin: bool = False) -> str:
    with open_database(settings.database_url)() as session:
        return crud.create_token(session, owner=owner, admin=admin)[1]


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The service for ``settings``, on loopback, until the block ends; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                           port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 120, "the server to start")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
