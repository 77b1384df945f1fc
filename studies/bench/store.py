"""Where benchmark runs and baselines live: ``OPTISTUDY_HOME/benchmarks/SUITE/``, one folder
per run (``runs/RUN_ID/run.json``, the suite as it ran in ``suite.json``, a check's verdict in
``check.json``) and the suite's baseline (``baseline.json``: which run, promoted when)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studies.bench.results import BenchRun
from studies.study.home import Home, read_json, write_json
from studies.study.names import check_name

RUN_FILE = "run.json"
SUITE_FILE = "suite.json"
CHECK_FILE = "check.json"


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by creation time (UTC, to the microsecond) and is unique across
    machines (a random suffix): ``20260101T120000.123456Z-3fa9c1``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


class BenchStore:
    """The stored runs and the baseline of one suite."""

    def __init__(self, home: Home, suite: str):
        self.suite = check_name(suite)
        self.root = home.root / "benchmarks" / self.suite

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / check_name(run_id)

    def run_ids(self) -> list[str]:
        """Every stored run, oldest first."""
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        return sorted(p.name for p in runs.iterdir() if (p / RUN_FILE).exists())

    def save(self, run: BenchRun, suite_spec: dict[str, Any]) -> Path:
        folder = self.run_dir(run.run_id)
        write_json(folder / SUITE_FILE, suite_spec)
        write_json(folder / RUN_FILE, run.to_json())
        return folder

    def load(self, run_id: str) -> BenchRun:
        path = self.run_dir(run_id) / RUN_FILE
        if not path.exists():
            known = ", ".join(self.run_ids()[-5:]) or "none yet"
            raise ValueError(f"suite {self.suite!r} has no run {run_id!r} (latest runs: "
                             f"{known}; see 'optistudy bench list {self.suite}')")
        return BenchRun.from_json(read_json(path))

    def save_check(self, run_id: str, check: dict[str, Any]) -> None:
        write_json(self.run_dir(run_id) / CHECK_FILE, check)

    def check_of(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / CHECK_FILE
        return read_json(path) if path.exists() else None

    def promote(self, run_id: str) -> BenchRun:
        """Make a stored run the suite's baseline."""
        run = self.load(run_id)
        write_json(self.root / "baseline.json",
                   {"run_id": run_id, "promoted": datetime.now(UTC).isoformat()})
        return run

    def baseline_id(self) -> str | None:
        path = self.root / "baseline.json"
        return str(read_json(path)["run_id"]) if path.exists() else None

    def baseline(self, run_id: str | None = None) -> BenchRun:
        """The run to check against: ``run_id``, else the suite's baseline."""
        chosen = run_id or self.baseline_id()
        if chosen is None:
            raise ValueError(f"suite {self.suite!r} has no baseline: promote a run with "
                             f"'optistudy bench baseline {self.suite} --from RUN' (runs: "
                             f"'optistudy bench list {self.suite}'), or pass --baseline RUN")
        return self.load(chosen)
