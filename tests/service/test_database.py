"""The shipped Alembic migrations build exactly the schema the models describe, and
migrating again is a no-op."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.database import engine_for, migrate
from service.models import Base


def test_the_migrations_match_the_models(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'nested' / 'service.db'}")
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
