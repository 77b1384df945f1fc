"""The study stores the service shares with its drivers, opened before the first request."""

from __future__ import annotations

import optuna

from service.progress import tracking
from studies.study.home import Home
from studies.study.recording import tracking_uri

SERVERS = ("postgresql", "mysql", "mssql", "oracle")
"""SQLAlchemy backends that are database servers (not files of this machine)."""


def _on_server(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in SERVERS


def open_stores(home: Home) -> None:
    """Create the schemas of the Optuna storage and the MLflow store now where they are
    database servers (PostgreSQL): requests served side by side, and the drivers they
    start, would otherwise race to create the same tables in an empty database. SQLite
    files are created by the first submission, whole (``tracking_client``); an MLflow
    server creates its own."""
    if _on_server(home.optuna_storage):
        optuna.storages.get_storage(home.optuna_storage)
    uri = tracking_uri(home)
    if _on_server(uri):
        tracking(uri)
