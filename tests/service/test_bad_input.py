"""A corpus of bad input, each item refused with a 4xx that names the field: invalid search
spaces, constraint violations, unknown names, oversized bodies, 101 parameters, 6,001-character
values, path-traversal names (``../``, ``..\\``, ``%2e%2e%2f``, ``%252e``, NUL), ``file://``
and link-local URIs, invalid and never-firing cron expressions. Nothing may be written outside
the data dir: the data dir's parent and the service's working dir are snapshot before and
after, and ``/tmp`` is searched for the corpus' marker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.live import bearer, isolate, serving, settings_for, token
from tests.service.studies_data import xor_study

MAX_BODY = 64 * 1024
MARKER = "corpus-escape"
"""In every path-like value, so that anything made from one can be found wherever it is."""
TRAVERSALS = [f"../{MARKER}", f"..\\{MARKER}", f"%2e%2e%2f{MARKER}", f"%252e%252e/{MARKER}",
              f"{MARKER}\x00.yaml", f"../../../../tmp/{MARKER}"]
URIS = [f"file:///tmp/{MARKER}", f"http://169.254.169.254/latest/meta-data/{MARKER}",
        f"http://[fe80::1]/{MARKER}"]


@dataclass
class Service:
    url: str
    headers: dict[str, str]
    home: Path
    outside: list[Path]


def _snapshot(folder: Path, skip: Path) -> dict[str, tuple[int, float]]:
    return {str(path): (path.stat().st_size, path.stat().st_mtime)
            for path in folder.rglob("*") if skip not in path.parents and path != skip}


def _marked(folder: Path) -> list[str]:
    return [str(path) for path in folder.glob(f"*{MARKER}*")]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    parent = tmp_path_factory.mktemp("corpus")
    home, cwd = parent / "home", parent / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(home, monkeypatch)
        monkeypatch.chdir(cwd)  # the service's working dir: must stay empty
        settings = settings_for(home, max_body_bytes=MAX_BODY)
        headers = bearer(token(settings, "alice"))
        before = _snapshot(parent, home)
        with serving(settings) as url:
            yield Service(url, headers, home, [parent, cwd])
        assert _snapshot(parent, home) == before, "written outside the data dir"
        assert list(cwd.iterdir()) == []
        for folder in (Path("/tmp"), parent.parent, Path.cwd().parent):
            assert _marked(folder) == [], folder
        assert not list(home.rglob(f"*{MARKER}*")), "a refused name reached the data dir"


def _study(**changes: Any) -> dict[str, Any]:
    return {**xor_study("corpus", trials=1, seeds=2, arms=1), **changes}


def _arm(**changes: Any) -> dict[str, Any]:
    arm: dict[str, Any] = {**xor_study("corpus", arms=1)["arms"][0], **changes}
    return arm


def _task(**changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {**xor_study("corpus")["tasks"][0], **changes}
    return task


LONG = "x" * 6001
STUDIES: list[tuple[str, dict[str, Any], str]] = [
    # invalid search spaces
    ("search-low-above-high", _study(arms=[_arm(search={"delta0": {"low": 1.0, "high": 0.1}})]),
     "arms.0.search.delta0"),
    ("search-log-of-negative",
     _study(arms=[_arm(search={"delta0": {"low": -1.0, "high": 1.0, "log": True}})]),
     "arms.0.search.delta0"),
    ("search-empty-choices", _study(arms=[_arm(search={"variant": {"choices": []}},
                                               fixed={}, defaults=[])]),
     "arms.0.search.variant"),
    ("search-unknown-type", _study(arms=[_arm(search={"delta0": {"type": "complex"}})]),
     "arms.0.search.delta0"),
    # constraint violations
    ("eta-plus-not-above-1", _study(arms=[_arm(fixed={"variant": "iRprop+", "eta_plus": 0.9})]),
     "arms.0.fixed.eta_plus"),
    ("momentum-above-1", _study(arms=[{"name": "sd", "optimizer": "steepest_descent",
                                       "fixed": {"lr": 0.1, "momentum": 1.5}}]),
     "arms.0.fixed.momentum"),
    ("default-outside-range", _study(arms=[_arm(defaults=[{"delta0": 5.0}])]),
     "arms.0.defaults.0.delta0"),
    ("no-seeds", _study(seeds_per_trial=0), "seeds_per_trial"),
    # unknown names
    ("unknown-task", _study(tasks=[_task(task="xnor")]), "tasks.0.task"),
    ("unknown-optimizer", _study(arms=[_arm(optimizer="sgd9")]), "arms.0.optimizer"),
    ("unknown-hyperparameter", _study(arms=[_arm(search={"gamma": {"low": 0.1, "high": 1}})]),
     "arms.0.search.gamma"),
    ("unknown-field", _study(colour="red"), "colour"),
    ("unknown-sampler", _study(sampler={"name": "oracle"}), "sampler.name"),
    # 101 parameters, 101 arms, 101 tasks
    ("101-search-parameters",
     _study(arms=[_arm(search={f"p{i}": {"low": 0.1, "high": 1.0} for i in range(101)},
                       defaults=[])]), "arms.0.search"),
    ("101-fixed-values", _study(arms=[_arm(fixed={f"p{i}": 1 for i in range(101)})]),
     "arms.0.fixed"),
    ("101-arms", _study(arms=[_arm(name=f"a{i}") for i in range(101)]), "arms"),
    ("101-tasks", _study(tasks=[_task(label=f"t{i}") for i in range(101)]), "tasks"),
    # 6,001-character values
    ("6001-description", _study(description=LONG), "description"),
    ("6001-task", _study(tasks=[_task(task=LONG)]), "tasks.0.task"),
    ("6001-name", _study(name=LONG), "name"),
    ("6001-search-name", _study(arms=[_arm(search={LONG: {"low": 0.1, "high": 1.0}})]),
     "arms.0.search"),
    # path-traversal names, URIs
    *((f"name-{index}", _study(name=bad), "name") for index, bad in enumerate(TRAVERSALS)),
    *((f"arm-name-{index}", _study(arms=[_arm(name=bad)]), "arms.0.name")
      for index, bad in enumerate(TRAVERSALS)),
    *((f"task-label-{index}", _study(tasks=[_task(label=bad)]), "tasks.0.label")
      for index, bad in enumerate(TRAVERSALS)),
    *((f"uri-name-{index}", _study(name=uri), "name") for index, uri in enumerate(URIS)),
    *((f"uri-task-{index}", _study(tasks=[_task(task=uri)]), "tasks.0.task")
      for index, uri in enumerate(URIS)),
    *((f"uri-module-{index}", _study(tasks=[_task(model={"type": "module", "path": uri},
                                                  init={"scheme": "module"})]),
       "tasks.0.model") for index, uri in enumerate(URIS)),
]


@pytest.mark.parametrize(("body", "field"), [(body, field) for _, body, field in STUDIES],
                         ids=[name for name, _, _ in STUDIES])
def test_a_bad_study_gets_4xx_naming_the_field(service: Service, body: dict[str, Any],
                                               field: str) -> None:
    response = httpx.post(f"{service.url}/studies", content=json.dumps(body),
                          headers={**service.headers, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:500]
    problems = response.json()["detail"]
    assert any(problem.startswith(f"{field}:") or problem.startswith(f"{field}.")
               for problem in problems), problems


def test_an_oversized_body_gets_413_naming_the_body(service: Service) -> None:
    response = httpx.post(f"{service.url}/studies", json=_study(description="x" * MAX_BODY),
                          headers=service.headers)
    assert response.status_code == 413
    assert "request body is larger than" in response.json()["detail"]


SCHEDULES: list[tuple[str, dict[str, Any], str]] = [
    ("cron-minute-61", {"cron": "61 * * * *", "suite": "classic"}, "cron"),
    ("cron-four-fields", {"cron": "* * * *", "suite": "classic"}, "cron"),
    ("cron-words", {"cron": "every day", "suite": "classic"}, "cron"),
    ("cron-never-fires", {"cron": "0 0 30 2 *", "suite": "classic"}, "cron"),
    ("cron-6001", {"cron": LONG, "suite": "classic"}, "cron"),
    ("unknown-suite", {"cron": "0 3 * * *", "suite": "nosuch"}, "suite"),
    *((f"suite-{index}", {"cron": "0 3 * * *", "suite": bad}, "suite")
      for index, bad in enumerate(TRAVERSALS + URIS)),
    *((f"baseline-{index}", {"cron": "0 3 * * *", "suite": "classic", "baseline": bad},
       "baseline") for index, bad in enumerate(TRAVERSALS + URIS)),
    ("unknown-missed", {"cron": "0 3 * * *", "suite": "classic", "missed": "all"}, "missed"),
]


@pytest.mark.parametrize(("body", "field"), [(body, field) for _, body, field in SCHEDULES],
                         ids=[name for name, _, _ in SCHEDULES])
def test_a_bad_schedule_gets_4xx_naming_the_field(service: Service, body: dict[str, Any],
                                                  field: str) -> None:
    response = httpx.post(f"{service.url}/schedules", json=body, headers=service.headers)
    assert response.status_code == 422, response.text[:500]
    problems = response.json()["detail"]
    assert any(problem.startswith(f"{field}:") for problem in problems), problems


@pytest.mark.parametrize("segment", ["%2e%2e%2f", "..%2f..%2fetc%2fpasswd", "%252e%252e",
                                     "..%5c..%5c", "x%00y", "file:%2f%2f%2fetc"])
def test_a_traversal_in_a_path_gets_4xx(service: Service, segment: str) -> None:
    for method, path in (("GET", f"/studies/{segment}"), ("POST", f"/studies/{segment}/cancel"),
                         ("GET", f"/studies/{segment}/report"),
                         ("DELETE", f"/schedules/{segment}")):
        response = httpx.request(method, f"{service.url}{path}", headers=service.headers,
                                 follow_redirects=True)  # a trailing slash: redirected
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert response.url.host == "127.0.0.1"
        if response.status_code == 422:
            assert "study_id" in response.text or "schedule_id" in response.text
