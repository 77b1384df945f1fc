"""Schemathesis against the OpenAPI schema of a real server: generated requests, valid and
malformed, on every route; no answer is a 5xx, every malformed request gets a 4xx, every
answer matches the schema. Bounded: 25 examples per route and mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from service import crud
from service.database import open_database
from service.models import StudyStatus
from tests.service.live import bearer, isolate, serving, settings_for, token
from tests.service.studies_data import xor_study


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A server with a token of alice's and one finished study of hers."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(home, monkeypatch)
        service_settings = settings_for(home)
        headers = bearer(token(service_settings, "alice"))
        with open_database(service_settings.database_url)() as session:
            study = crud.create_study(session, name="finished", owner="alice",
                                      spec=xor_study("finished"), driver_kind="local")
            study.status = StudyStatus.completed
            session.commit()
        with serving(service_settings) as url:
            yield url, headers


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode,
          headers: dict[str, str]) -> None:
    # A spec has rules JSON Schema cannot state (registry names, the algorithms' bounds): a
    # schema-valid spec may be refused (422), so acceptance is not checked there; nor for a
    # schedule (a cron expression, a suite that must exist).
    refusable = ("POST /studies", "POST /schedules")
    excluded = [positive_data_acceptance] if operation.label in refusable else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    call()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_no_5xx_and_malformed_ones_a_4xx(
        service: tuple[str, dict[str, str]], mode: GenerationMode) -> None:
    url, headers = service
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.label == "GET /health":
            continue  # nothing in it can be malformed
        _fuzz(operation, mode, headers)
