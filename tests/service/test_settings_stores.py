"""SQLite mode refuses what it cannot serve safely: a Ray cluster elsewhere would run the
studies' drivers on its head, writing to this machine's SQLite (or file) stores over a
network filesystem. The service names the setting and what is allowed instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from service.cli import app as cli
from service.settings import SQLITE_MAX_RUNNING, Settings
from tests.service.live import isolate

POSTGRES = "postgresql+psycopg://optistudy@db.internal/optuna"


@pytest.mark.parametrize(("stores", "refused"), [
    ({}, ["OPTISTUDY_OPTUNA_STORAGE unset: SQLite in the data dir",
          "MLFLOW_TRACKING_URI unset: SQLite in the data dir"]),
    ({"OPTISTUDY_OPTUNA_STORAGE": "sqlite:////shared/optuna.db",
      "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"},
     ["OPTISTUDY_OPTUNA_STORAGE=sqlite:////shared/optuna.db"]),
    ({"OPTISTUDY_OPTUNA_STORAGE": POSTGRES, "MLFLOW_TRACKING_URI": "/shared/mlruns"},
     ["MLFLOW_TRACKING_URI=/shared/mlruns"]),
])
def test_sqlite_stores_with_a_remote_ray_cluster_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores: dict[str, str],
        refused: list[str]) -> None:
    isolate(tmp_path, monkeypatch)
    for name, value in stores.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings(home=tmp_path, ray_address="http://ray-head.internal:8265")
    message = str(error.value)
    assert "OPTISTUDY_RAY_ADDRESS=http://ray-head.internal:8265 runs the studies' drivers on " \
           "a Ray cluster, which cannot write safely to this machine's SQLite" in message
    assert all(store in message for store in refused), message
    assert "allowed: OPTISTUDY_OPTUNA_STORAGE a PostgreSQL URL" in message


@pytest.mark.parametrize(("address", "stores"), [
    ("http://ray-head.internal:8265", {"OPTISTUDY_OPTUNA_STORAGE": POSTGRES,
                                       "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}),
    ("http://10.0.0.5:8265", {"OPTISTUDY_OPTUNA_STORAGE": POSTGRES,
                              "MLFLOW_TRACKING_URI": POSTGRES.replace("optuna", "mlflow")}),
    ("http://127.0.0.1:8265", {}),  # a head on this machine runs its drivers next to the files
    ("http://localhost:8265", {}),
    ("[::1]:8265", {}),
])
def test_shared_stores_or_a_head_on_this_machine_are_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str,
        stores: dict[str, str]) -> None:
    isolate(tmp_path, monkeypatch)
    for name, value in stores.items():
        monkeypatch.setenv(name, value)
    assert Settings(home=tmp_path, ray_address=address).ray_address == address


def test_serve_refuses_to_start_naming_the_setting(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["serve"], env={
        "OPTISTUDY_HOME": str(tmp_path), "OPTISTUDY_RAY_ADDRESS": "http://10.0.0.5:8265"})
    assert result.exit_code == 2
    assert "error: invalid setting" in result.output
    assert "OPTISTUDY_RAY_ADDRESS=http://10.0.0.5:8265" in result.output
    assert not (tmp_path / "service.db").exists()


@pytest.mark.parametrize("stores", [
    {},  # everything in the data dir
    {"OPTISTUDY_OPTUNA_STORAGE": POSTGRES, "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"},
])
def test_more_drivers_than_sqlite_serves_are_refused_naming_the_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores: dict[str, str]) -> None:
    isolate(tmp_path, monkeypatch)  # the service database: SQLite in the data dir
    for name, value in stores.items():
        monkeypatch.setenv(name, value)
    assert Settings(home=tmp_path, max_running_studies=SQLITE_MAX_RUNNING)
    with pytest.raises(ValidationError) as error:
        Settings(home=tmp_path, max_running_studies=SQLITE_MAX_RUNNING + 1)
    message = str(error.value)
    assert f"OPTISTUDY_MAX_RUNNING_STUDIES={SQLITE_MAX_RUNNING + 1}" in message
    assert "OPTISTUDY_DATABASE_URL" in message
    assert ("OPTISTUDY_OPTUNA_STORAGE" in message) == (not stores), message
    assert f"allowed: at most {SQLITE_MAX_RUNNING} with SQLite stores" in message


def test_postgresql_stores_take_many_drivers(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(tmp_path, monkeypatch)
    monkeypatch.setenv("OPTISTUDY_OPTUNA_STORAGE", POSTGRES)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", POSTGRES.replace("optuna", "mlflow"))
    settings = Settings(home=tmp_path, database_url=POSTGRES.replace("optuna", "service"),
                        max_running_studies=32)
    assert settings.max_running_studies == 32
