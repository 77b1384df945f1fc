"""Every route but /health needs a valid, unrevoked bearer token; a study is its owner's
(and an admin's) alone. A real server on loopback, a real SQLite or PostgreSQL database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr
from typer.testing import CliRunner

from service import crud
from service.app import create_app
from service.cli import app as cli
from service.database import open_database
from service.models import StudyStatus
from service.settings import Settings
from tests.backends import BACKENDS, stores
from tests.service.live import bearer, isolate, serving, settings_for, token
from tests.service.studies_data import xor_study

SETTINGS_ADMIN = "settings-admin-token-0123456789abcdef"


@dataclass
class Service:
    url: str
    settings: Settings
    tokens: dict[str, str]
    study_id: str


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """alice, bob, root (an admin token) and a revoked token of alice's; one finished study
    of alice's, recorded in the database (SQLite, then PostgreSQL)."""
    home = tmp_path_factory.mktemp("home")
    with stores(request.param, home) as backend, pytest.MonkeyPatch.context() as monkeypatch:
        isolate(home, monkeypatch)
        backend.apply(monkeypatch)
        settings = settings_for(home, admin_token=SecretStr(SETTINGS_ADMIN))
        tokens = {owner: token(settings, owner) for owner in ("alice", "bob")}
        tokens["root"] = token(settings, "root", admin=True)
        with open_database(settings.database_url)() as session:
            revoked, tokens["revoked"] = crud.create_token(session, owner="alice")
            crud.revoke_token(session, token_id=revoked.id)
            study = crud.create_study(session, name="alices", owner="alice",
                                      spec=xor_study("alices"), driver_kind="local")
            study.status = StudyStatus.completed
            session.commit()
            study_id = str(study.id)
        with serving(settings) as url:
            yield Service(url, settings, tokens, study_id)


def _routes(service: Service) -> list[tuple[str, str]]:
    """Every (method, path) the OpenAPI schema lists but /health, with the study's id (and
    a schedule id)."""
    schema = httpx.get(f"{service.url}/openapi.json").json()
    return [(method.upper(), path.replace("{study_id}", service.study_id)
             .replace("{schedule_id}", "00000000-0000-4000-8000-000000000000"))
            for path, operations in schema["paths"].items() if path != "/health"
            for method in operations]


def test_health_needs_no_token(service: Service) -> None:
    response = httpx.get(f"{service.url}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_every_route_of_the_app_is_in_the_openapi_schema(service: Service) -> None:
    schema = create_app(service.settings).openapi()
    for route in create_app(service.settings).routes:
        if isinstance(route, APIRoute):
            assert route.path in schema["paths"], route.path
            assert set(route.methods) <= {m.upper() for m in schema["paths"][route.path]}


@pytest.mark.parametrize("credential", [
    None, "Bearer", "Bearer osk_not-a-token", "Basic YWxpY2U6c2VjcmV0", "Bearer revoked",
    f"Bearer {SETTINGS_ADMIN}x", f"Bearer {SETTINGS_ADMIN[:-1]}"])
def test_every_route_but_health_refuses_a_missing_or_bad_token(
        service: Service, credential: str | None) -> None:
    routes = _routes(service)
    assert ("POST", "/studies") in routes and ("POST", "/schedules") in routes
    assert len(routes) == 9
    if credential == "Bearer revoked":
        credential = f"Bearer {service.tokens['revoked']}"
    headers = {"Content-Type": "application/json"}
    if credential is not None:
        headers["Authorization"] = credential
    for method, path in routes:
        response = httpx.request(method, f"{service.url}{path}", headers=headers,
                                 json=xor_study("never-run"))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in response.json()["detail"]


def test_a_study_is_its_owners_alone(service: Service) -> None:
    study = f"{service.url}/studies/{service.study_id}"
    bob = bearer(service.tokens["bob"])
    for method, path in _routes(service):
        if service.study_id in path:
            response = httpx.request(method, f"{service.url}{path}", headers=bob)
            assert response.status_code == 403, (method, path)
            assert "belongs to another owner" in response.json()["detail"]
    assert httpx.get(f"{service.url}/studies", headers=bob).json() == {"data": [], "count": 0}
    alice = httpx.get(study, headers=bearer(service.tokens["alice"]))
    assert alice.status_code == 200 and alice.json()["owner"] == "alice"
    for admin in (service.tokens["root"], SETTINGS_ADMIN):
        assert httpx.get(study, headers=bearer(admin)).status_code == 200
        listed = httpx.get(f"{service.url}/studies", headers=bearer(admin)).json()
        assert [s["name"] for s in listed["data"]] == ["alices"]


def test_tokens_from_the_command_line_work_until_revoked(service: Service) -> None:
    runner = CliRunner()
    environment = {"OPTISTUDY_HOME": str(service.settings.home)}
    created = runner.invoke(cli, ["token", "create", "--owner", "carol"], env=environment)
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert re.fullmatch(r"osk_[\w-]{43}", secret)
    token_id = re.search(r"token (\d+) for carol", created.stderr)
    assert token_id is not None
    studies = f"{service.url}/studies"
    assert httpx.get(studies, headers=bearer(secret)).status_code == 200
    listed = runner.invoke(cli, ["token", "list"], env=environment)
    assert re.search(rf"{token_id[1]}\s+carol\s+-\s+active", listed.stdout)
    assert secret not in listed.stdout
    revoked = runner.invoke(cli, ["token", "revoke", token_id[1]], env=environment)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert httpx.get(studies, headers=bearer(secret)).status_code == 401
    assert re.search(rf"{token_id[1]}\s+carol\s+-\s+revoked",
                     runner.invoke(cli, ["token", "list"], env=environment).stdout)
    unknown = runner.invoke(cli, ["token", "revoke", "999"], env=environment)
    assert unknown.exit_code == 2 and "no token has the id 999" in unknown.stderr
    bad_owner = runner.invoke(cli, ["token", "create", "--owner", "../x"], env=environment)
    assert bad_owner.exit_code == 2 and "is not allowed" in bad_owner.stderr
