"""Fixtures for every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BACKENDS, Backend, stores


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The test's stores on each backend in turn: SQLite files in ``tmp_path``, then fresh
    PostgreSQL databases (skipped, with the reason, where no server is reachable)."""
    with stores(request.param, tmp_path) as found:
        yield found
