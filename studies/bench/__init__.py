"""Regression benchmarks: pinned suites of training configurations run on Ray, recorded in
MLflow, stored with their environment, and checked seed by seed against a baseline run."""

from studies.bench.check import CheckReport, EntryCheck, NotComparable, check_run
from studies.bench.results import BenchRun, EntryResult
from studies.bench.store import BenchStore
from studies.bench.suite import CheckSettings, Entry, Suite, load_suite

__all__ = [
    "BenchRun",
    "BenchStore",
    "CheckReport",
    "CheckSettings",
    "Entry",
    "EntryCheck",
    "EntryResult",
    "NotComparable",
    "Suite",
    "check_run",
    "load_suite",
]
