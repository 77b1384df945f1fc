"""The database connection and its schema migrations (Alembic, shipped in
``service/migrations``, applied at start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECTIONS = 50
"""The most connections the service holds: one for each thread that may hold a session at
once (anyio's 40 worker threads run the endpoints; the reconcile and scheduler threads), so
that requests queued on a lock (submissions are serialised) never starve the others of a
connection. A PostgreSQL server's ``max_connections`` must leave room for them and for the
drivers (a few each)."""


def engine_for(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created, and its connections are
    shared by the server's threads."""
    parsed = make_url(url)
    pool = {"pool_size": 5, "max_overflow": CONNECTIONS - 5}
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **pool)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        pool = {}  # one in-memory database: SQLAlchemy's single-connection pool
    return create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                         **pool)


def migrate(engine: Engine) -> None:
    """Bring the database schema up to the newest revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: str) -> sessionmaker[Session]:
    """Migrate the database at ``url`` and return its session factory."""
    engine = engine_for(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
