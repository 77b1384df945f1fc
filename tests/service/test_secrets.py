"""No secret ever appears in logs, files, MLflow params or tags, or the environment of the
processes the service starts: a real ``optistudy serve`` with a token and an admin token runs
a small study to the end, then every output is searched for the tokens and their hashes."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from service.tokens import token_hash
from tests.ray_cluster import RayHead
from tests.service.live import bearer, isolate, settings_for, token, wait_for
from tests.service.studies_data import xor_study
from tests.service.test_idempotency import service_process


@pytest.mark.slow
def test_no_secret_in_logs_files_mlflow_or_driver_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_ray: RayHead) -> None:
    home = tmp_path / "home"
    isolate(home, monkeypatch, shared_ray)
    admin = "adm_" + secrets.token_urlsafe(32)
    monkeypatch.setenv("OPTISTUDY_ADMIN_TOKEN", admin)
    settings = settings_for(home, admin_token=SecretStr(admin))
    user = token(settings, "alice")
    wrong = "osk_" + secrets.token_urlsafe(32)  # a token the service never made
    secret_values = [user, admin, wrong]
    hashes = [token_hash(value) for value in secret_values]
    url = f"http://127.0.0.1:{settings.port}"
    log = tmp_path / "service.log"
    environments: list[bytes] = []
    with service_process(settings, tmp_path, log):
        assert httpx.get(f"{url}/studies", headers=bearer(wrong)).status_code == 401
        made = httpx.post(f"{url}/studies", headers=bearer(user),
                          json=xor_study("secrets", trials=1, seeds=2, max_epochs=50, arms=1))
        assert made.status_code == 201, made.text
        study = f"{url}/studies/{made.json()['id']}"
        assert httpx.get(study, headers=bearer(admin)).status_code == 200
        with open(f"/proc/{_driver_pid(home)}/environ", "rb") as environ:
            environments.append(environ.read())

        def ended() -> bool:
            status = httpx.get(study, headers=bearer(user)).json()["status"]
            return status in ("completed", "failed")

        wait_for(ended, 300, "the study to end")
        assert httpx.get(study, headers=bearer(user)).json()["status"] == "completed"
        time.sleep(0.5)

    searched = [log, *(p for p in home.rglob("*") if p.is_file())]
    assert (home / "studies" / "secrets" / "driver.log") in searched
    for path in searched:
        content = path.read_bytes()
        for value in secret_values:
            assert value.encode() not in content, (path, "token")
        if path.name != "service.db":  # where the hash of a token belongs
            for digest in hashes:
                assert digest[:12].encode() not in content, (path, "token hash")
    for environment in environments:
        for value in secret_values:
            assert value.encode() not in environment, "a token in the driver's environment"

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])]
    assert runs, "the study recorded nothing in MLflow"
    for run in runs:
        recorded = " ".join([*run.data.params, *run.data.params.values(), *run.data.tags,
                             *run.data.tags.values()])
        for value in [*secret_values, *(digest[:12] for digest in hashes)]:
            assert value not in recorded, run.info.run_id


def _driver_pid(home: Path) -> int:
    """The driver of study ``secrets``: the session leader running its spec file."""
    spec = str(home / "studies" / "secrets" / "spec.yaml").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if spec in (entry / "cmdline").read_bytes().split(b"\0") \
                        and os.getpgid(int(entry.name)) == int(entry.name):
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no driver runs study 'secrets'")
