"""The shipped Alembic migrations build exactly the schema the models describe, and
migrating again is a no-op, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.database import engine_for, migrate
from service.models import Base
from tests.backends import Backend


def test_the_migrations_match_the_models(backend: Backend) -> None:
    url = backend.database_url
    if backend.name == "sqlite":
        url = f"sqlite:///{backend.home / 'nested' / 'service.db'}"  # its folder is created
    engine = engine_for(url)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection),
                                           Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
