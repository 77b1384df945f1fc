"""The installed Ray and MLflow are at least the releases that fix the published advisories
affecting what optistudy uses (the README's Reliability section lists them). Not an audit:
this workplace cannot reach an advisory database, so the list is kept by hand; this test
keeps a pin from going below it."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version

FLOORS = {
    # CVE-2023-6019, -6020, -6021, -48023 (dashboard command injection, file reads, SSRF):
    # fixed in 2.8.1; CVE-2026-27482 (unauthenticated DELETE on the dashboard): 2.54.0.
    # CVE-2023-48022 (no authentication on the jobs API) has no fix: optistudy's heads run
    # with token authentication (RAY_AUTH_MODE=token) instead.
    "ray": "2.54.0",
    # CVE-2026-2614 (path traversal in model version creation) and CVE-2026-2651 (multipart
    # upload authorisation with --serve-artifacts): fixed in 3.10.0.
    "mlflow": "3.10.0",
}


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_installed_release_fixes_the_known_advisories(package: str) -> None:
    installed = Version(version(package))
    assert installed >= Version(FLOORS[package]), (
        f"{package} {installed} is older than {FLOORS[package]}, which fixes advisories that "
        "affect optistudy (see this file)")
