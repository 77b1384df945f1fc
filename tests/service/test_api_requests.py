"""What ``POST /studies`` refuses, and why: every problem of a spec with its field path, names
that could reach the filesystem, user modules, bodies too large or of another type, a name
already taken; and the 4xx answers of the other routes. Nothing here starts a driver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from service import crud
from service.database import open_database
from service.models import StudyStatus
from tests.backends import BACKENDS, stores
from tests.service.live import bearer, isolate, serving, settings_for, token
from tests.service.studies_data import xor_study

MAX_BODY = 64 * 1024


@dataclass
class Service:
    url: str
    headers: dict[str, str]
    study_id: str


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """On each backend's service database (SQLite, then PostgreSQL)."""
    home = tmp_path_factory.mktemp("home")
    with stores(request.param, home) as backend, pytest.MonkeyPatch.context() as monkeypatch:
        isolate(home, monkeypatch)
        backend.apply(monkeypatch)
        settings = settings_for(home, max_body_bytes=MAX_BODY)
        headers = bearer(token(settings, "alice"))
        with open_database(settings.database_url)() as session:
            study = crud.create_study(session, name="finished", owner="alice",
                                      spec=xor_study("finished"), driver_kind="local")
            study.status = StudyStatus.completed
            session.commit()
        with serving(settings) as url:
            yield Service(url, headers, str(study.id))


def _post(service: Service, body: bytes | str, content_type: str) -> httpx.Response:
    return httpx.post(f"{service.url}/studies", content=body,
                      headers={**service.headers, "Content-Type": content_type})


def _problems(service: Service, spec: dict[str, object]) -> list[str]:
    response = _post(service, json.dumps(spec), "application/json")
    assert response.status_code == 422, response.text
    problems: list[str] = response.json()["detail"]
    return problems


@pytest.mark.parametrize(("change", "expected"), [
    ({"name": "../etc"}, "name: name '../etc' is not allowed (allowed: 1 to 100 of the "
                         "characters A-Z a-z 0-9 _ . -, not only dots)"),
    ({"name": ".."}, "name: name '..' is not allowed"),
    ({"name": "a/b"}, "name: name 'a/b' is not allowed"),
    ({"seeds_per_trial": 0}, "seeds_per_trial: Input should be greater than or equal to 1"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"tasks": [{"task": "xnor"}]}, "tasks.0.task: Unknown task 'xnor'"),
    ({"arms": [{"name": "x/y", "optimizer": "adam"}]}, "arms.0.name: name 'x/y' is not allowed"),
    ({"arms": [{"name": "a", "optimizer": "adam", "search": {"lr": {"low": -1, "high": 1}}}]},
     "arms.0.search.lr"),
])
def test_an_invalid_spec_gets_422_naming_the_field(service: Service, change: dict[str, object],
                                                  expected: str) -> None:
    problems = _problems(service, {**xor_study("bad"), **change})
    assert any(expected in problem for problem in problems), problems


def test_a_user_module_as_model_is_refused_over_http(service: Service) -> None:
    module = {"type": "module", "path": "os:system"}
    spec = xor_study("modules")
    spec["tasks"] = [{**spec["tasks"][0], "model": module,  # type: ignore[index]
                      "init": {"scheme": "module"}}]
    problems = _problems(service, spec)
    assert problems == [
        "tasks.0.model.type: 'module' imports Python code on the service's machines (allowed "
        "over HTTP: mlp, perceptron; an operator may set OPTISTUDY_ALLOW_MODULE_MODELS=true)"]
    spec = xor_study("modules")
    spec["arms"][0]["overrides"] = {"model": module,  # type: ignore[index]
                                    "init": {"scheme": "module"}}
    assert [p.split(":")[0] for p in _problems(service, spec)] == ["arms.0.overrides.model.type"]


def test_yaml_bodies_are_parsed_safely(service: Service) -> None:
    broken = _post(service, "name: [xor\n", "application/yaml")
    assert broken.status_code == 422 and "not valid YAML" in broken.json()["detail"][0]
    listed = _post(service, "- xor\n", "text/yaml")
    assert listed.json()["detail"] == ["(body): the spec must be a mapping of fields"]
    code = _post(service, "name: !!python/object/apply:os.system ['true']\n",
                 "application/yaml")
    assert code.status_code == 422 and "not valid YAML" in code.json()["detail"][0]
    aliases = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):  # 10**7 values after expansion, in a few hundred bytes
        aliases.append(f"{chr(97 + level)}: &{chr(97 + level)} "
                       f"[{', '.join([f'*{chr(96 + level)}'] * 10)}]")
    bomb = _post(service, "\n".join(aliases) + "\n", "application/yaml")
    assert bomb.status_code == 422
    assert bomb.json()["detail"] == [
        "(body): more than 100000 values (allowed: a spec of at most 100000, aliases expanded)"]
    deep = _post(service, "[" * 10_000 + "]" * 10_000, "application/json")
    assert deep.status_code == 422
    valid_yaml_invalid_spec = _post(service, yaml.safe_dump({**xor_study("y"), "seeds_per_trial":
                                                             -1}), "application/yaml")
    assert valid_yaml_invalid_spec.json()["detail"] == [
        "seeds_per_trial: Input should be greater than or equal to 1"]


def test_other_content_types_and_large_bodies_are_refused(service: Service) -> None:
    text = _post(service, "name: x", "text/plain")
    assert text.status_code == 415
    assert "allowed: application/json, application/yaml" in text.json()["detail"]
    assert _post(service, "{}", "").status_code == 415
    large = _post(service, json.dumps({"description": "x" * MAX_BODY}), "application/json")
    assert large.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        yield b'{"description": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    chunked = httpx.post(f"{service.url}/studies", content=chunks(),
                         headers={**service.headers, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert chunked.json()["detail"] == f"the request body is larger than {MAX_BODY} bytes"


def test_a_name_already_taken_gets_409(service: Service) -> None:
    response = _post(service, json.dumps(xor_study("finished")), "application/json")
    assert response.status_code == 409
    assert response.json()["detail"] == ("the study name 'finished' is taken (allowed: a name "
                                         "no other study has)")


def test_studies_pages_filters_and_4xx_answers(service: Service) -> None:
    studies = f"{service.url}/studies"
    headers = service.headers
    page = httpx.get(studies, params={"status": "completed", "limit": 1}, headers=headers)
    assert page.json()["count"] == 1 and page.json()["data"][0]["name"] == "finished"
    assert httpx.get(studies, params={"status": "running"}, headers=headers).json() == {
        "data": [], "count": 0}
    assert httpx.get(studies, params={"offset": 1}, headers=headers).json()["data"] == []
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "sleeping"}):
        assert httpx.get(studies, params=params, headers=headers).status_code == 422, params
    assert httpx.get(f"{studies}/not-an-id", headers=headers).status_code == 422
    missing = httpx.get(f"{studies}/00000000-0000-0000-0000-000000000000", headers=headers)
    assert missing.status_code == 404
    finished = f"{studies}/{service.study_id}"
    detail = httpx.get(finished, headers=headers).json()
    assert detail["progress"] == [
        {"task": "xor", "arm": arm, "trials_requested": 2, "trials_finished": 0,
         "trials_running": 0, "best": None} for arm in ("iRprop-plus", "momentum")]
    assert detail["mlflow"] is None and detail["objective_metric"] == "epochs_penalised_mean"
    cancel = httpx.post(f"{finished}/cancel", headers=headers)
    assert cancel.status_code == 409
    assert cancel.json()["detail"] == ("study 'finished' is completed: only a queued or "
                                       "running study can be cancelled")
    report = httpx.get(f"{finished}/report", headers=headers)
    assert report.status_code == 409
    assert report.json()["detail"] == "no trial of study 'finished' has finished: nothing to report"
