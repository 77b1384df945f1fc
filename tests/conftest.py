"""Fixtures for every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BACKENDS, Backend, stores
from tests.ray_cluster import RayHead, new_token, ray_head


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The test's stores on each backend in turn: SQLite files in ``tmp_path``, then fresh
    PostgreSQL databases (skipped, with the reason, where no server is reachable)."""
    with stores(request.param, tmp_path) as found:
        yield found


@pytest.fixture(scope="session")
def shared_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """One Ray head of two CPUs for the session's end-to-end tests: their drivers join it
    (``RAY_ADDRESS``) instead of each starting and stopping a local Ray. Started when a test
    first asks for it; tests run one at a time, so each has the head to itself."""
    with ray_head(new_token(tmp_path_factory.mktemp("shared-ray"))) as head:
        yield head
