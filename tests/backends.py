"""The stores a test runs against: the embedded SQLite files (the default) or a real
PostgreSQL server, one database each for the service, the Optuna storage and MLflow,
created for the test and dropped after it.

The server is ``OPTISTUDY_TEST_POSTGRES`` (an admin URL, default the project machines' and
CI's ``postgresql://postgres@127.0.0.1:5432/test``, trust authentication). Where it cannot
be reached, the PostgreSQL half of a test is skipped with the reason, unless
``OPTISTUDY_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("service", "optuna", "mlflow")


@dataclass(frozen=True)
class Backend:
    """Where one test's stores are: ``name`` is ``sqlite`` or ``postgresql``; the URLs are
    those the service and the drivers use (for SQLite, the data dir's default files)."""

    name: str
    home: Path
    database_url: str
    optuna_storage: str
    tracking_uri: str

    @property
    def environment(self) -> dict[str, str]:
        """The settings that point the service and its drivers at these stores (none for
        SQLite: the embedded defaults under ``OPTISTUDY_HOME``)."""
        if self.name == "sqlite":
            return {}
        return {"OPTISTUDY_DATABASE_URL": self.database_url,
                "OPTISTUDY_OPTUNA_STORAGE": self.optuna_storage,
                "MLFLOW_TRACKING_URI": self.tracking_uri}

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in self.environment.items():
            monkeypatch.setenv(key, value)


def admin_url() -> str:
    return os.environ.get("OPTISTUDY_TEST_POSTGRES", ADMIN_URL)


@cache
def postgres_problem() -> str | None:
    """Why the PostgreSQL server cannot be used, or None (asked once per session)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as connection:
            connection.execute("select 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {admin_url()} is not reachable ({str(error).strip()})"
    return None


def require_postgres() -> None:
    """Skip (or, with ``OPTISTUDY_REQUIRE_POSTGRES=1``, fail) unless PostgreSQL is there."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("OPTISTUDY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{problem}; OPTISTUDY_REQUIRE_POSTGRES=1 asks for the PostgreSQL tests")
    pytest.skip(f"{problem}: the PostgreSQL half is skipped (set OPTISTUDY_TEST_POSTGRES "
                "to a server's admin URL)")


def _sql(statement: str, databases: Iterable[str]) -> None:
    """Run ``statement`` for each of ``databases``, quoted in for ``{}`` (outside a
    transaction), on one connection."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url(), autocommit=True, connect_timeout=10) as connection:
        for database in databases:
            connection.execute(sql.SQL(statement).format(sql.Identifier(database)))


def _store_url(database: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of ``database`` on the admin URL's server."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url()).set(drivername="postgresql+psycopg",
                                     database=database).render_as_string(hide_password=False)


@contextlib.contextmanager
def stores(name: str, home: Path) -> Iterator[Backend]:
    """The stores of backend ``name`` for a data dir ``home``; PostgreSQL's databases are
    created fresh (uniquely named) and dropped after, with any connection left to them."""
    home.mkdir(parents=True, exist_ok=True)
    if name == "sqlite":
        yield Backend(name, home, f"sqlite:///{home / 'service.db'}",
                      f"sqlite:///{home / 'optuna.db'}", f"sqlite:///{home / 'mlflow.db'}")
        return
    require_postgres()
    prefix = f"optistudy_test_{uuid.uuid4().hex[:12]}"
    databases = {store: f"{prefix}_{store}" for store in STORES}
    try:
        _sql("CREATE DATABASE {}", databases.values())
        yield Backend(name, home, *(_store_url(databases[store]) for store in STORES))
    finally:
        _sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", databases.values())
