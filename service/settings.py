"""The service's settings: one object, read from ``OPTISTUDY_*`` environment variables.

The study stores keep their own variables (read where they are used):
``OPTISTUDY_OPTUNA_STORAGE`` (the Optuna storage, default SQLite in the data dir) and
``MLFLOW_TRACKING_URI`` (default SQLite in the data dir).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_TOKEN_LENGTH = 32
LOCAL_STORES = ("sqlite:", "file:")
"""Stores that are files of the service's machine (an MLflow URI without a scheme is a
folder too)."""
SQLITE_MAX_RUNNING = 4
"""Concurrent drivers allowed while a store is SQLite (one write lock per file): a judgment
from the load test's writers, not a measured limit; PostgreSQL mode lifts it."""


class Settings(BaseSettings):
    """Every setting has a safe default but the credentials: there is no default token."""

    model_config = SettingsConfigDict(env_prefix="OPTISTUDY_", extra="ignore")

    home: Path = Field(default=Path(".optistudy"),
                       description="the data dir (the same as the CLI's OPTISTUDY_HOME)")
    database_url: str = Field(default="", description="the service database (default: "
                              "sqlite:///<home>/service.db; a PostgreSQL URL at scale)")
    host: str = Field(default="127.0.0.1", description="the address to bind (loopback)")
    port: int = Field(default=8000, ge=1, le=65535)
    ray_address: str | None = Field(
        default=None, description="a Ray cluster's job server (http://HEAD:8265): studies "
        "are submitted there as Ray Jobs; unset, each study's driver is a local process")
    max_body_bytes: int = Field(default=1 << 20, ge=1024,
                                description="the largest request body accepted (413 above)")
    admin_token: SecretStr | None = Field(
        default=None, description=f"a bearer token with admin rights (at least "
        f"{MIN_TOKEN_LENGTH} characters), besides those of 'optistudy token create'")
    allow_module_models: bool = Field(
        default=False, description="accept specs with model type 'module' (imports the "
        "named Python code on the cluster: for trusted users only)")
    report_seeds: int = Field(default=64, ge=2, le=10_000,
                              description="fresh seeds a report re-runs each arm's best on")
    reconcile_seconds: float = Field(default=1.0, gt=0.0,
                                     description="how often the drivers' state is checked")
    scheduler_seconds: float = Field(default=1.0, gt=0.0,
                                     description="how often the benchmark schedules are "
                                                 "checked for a due slot")
    cancel_grace_seconds: float = Field(default=10.0, ge=0.0,
                                        description="from SIGTERM to SIGKILL on cancel")
    max_running_studies: int = Field(
        default=SQLITE_MAX_RUNNING, ge=1, le=1000,
        description="studies whose drivers run at once; later ones wait, queued (at most "
                    f"{SQLITE_MAX_RUNNING} while any store is SQLite)")

    @field_validator("home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"OPTISTUDY_ADMIN_TOKEN is too short (allowed: at least "
                             f"{MIN_TOKEN_LENGTH} characters, e.g. from "
                             "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"')")
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'service.db'}"
        return self

    @model_validator(mode="after")
    def _sqlite_writers(self) -> Settings:
        """Refuse more concurrent drivers than SQLite serves safely: every driver writes its
        trials to the Optuna and MLflow stores, and SQLite has one write lock per file, so
        many writers end in 'database is locked' after its busy timeout."""
        if self.max_running_studies <= SQLITE_MAX_RUNNING:
            return self
        sqlite = [name for name, value in (
            ("OPTISTUDY_DATABASE_URL", self.database_url),
            ("OPTISTUDY_OPTUNA_STORAGE", os.environ.get("OPTISTUDY_OPTUNA_STORAGE", "")),
            ("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", "")))
            if not value or value.startswith(LOCAL_STORES) or "://" not in value]
        if sqlite:
            raise ValueError(
                f"OPTISTUDY_MAX_RUNNING_STUDIES={self.max_running_studies} is more concurrent "
                f"drivers than SQLite serves safely ({', '.join(sqlite)}: SQLite or files) "
                f"(allowed: at most {SQLITE_MAX_RUNNING} with SQLite stores; more with every "
                "store on PostgreSQL, see the README's PostgreSQL mode)")
        return self

    @model_validator(mode="after")
    def _stores_reach_the_drivers(self) -> Settings:
        """Refuse SQLite (or file) study stores with a Ray cluster elsewhere: its drivers run
        on the cluster's head and would write to these files over a network filesystem,
        where SQLite's locking does not hold (a corrupt or silently split ledger). A head on
        this machine (loopback) runs its drivers here, next to the files."""
        if not self.ray_address or _loopback(self.ray_address):
            return self
        local = []
        for name in ("OPTISTUDY_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"):
            value = os.environ.get(name)
            if not value:
                local.append(f"{name} unset: SQLite in the data dir")
            elif value.startswith(LOCAL_STORES) or "://" not in value:
                local.append(f"{name}={value}")
        if local:
            raise ValueError(
                f"OPTISTUDY_RAY_ADDRESS={self.ray_address} runs the studies' drivers on a Ray "
                f"cluster, which cannot write safely to this machine's SQLite or file stores "
                f"({'; '.join(local)}) (allowed: "
                "OPTISTUDY_OPTUNA_STORAGE a PostgreSQL URL, e.g. "
                "postgresql+psycopg://USER@HOST/optuna, and MLFLOW_TRACKING_URI a PostgreSQL "
                "URL or an MLflow server, http://HOST:5000)")
        return self


def _loopback(address: str) -> bool:
    """Whether ``address`` (http://HOST:PORT or HOST:PORT) names this machine by loopback."""
    host = urlsplit(address if "://" in address else f"//{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
