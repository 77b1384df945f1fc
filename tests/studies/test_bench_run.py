"""``optistudy bench`` end to end on a real local Ray and a real SQLite MLflow store: run a
small suite, promote the run to the baseline, check an unchanged re-run (bit-identical:
exit 0), check a re-run with a regression injected below the suite (Rprop's η⁺ silently
changed in the Ray workers: exit 1, the entry named), and refuse a changed suite or other
seeds (exit 2) before running anything."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from service.cli import app
from studies.bench import BenchStore
from studies.study.home import Home, read_json
from tests.studies import bench_regression

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
SUITE: dict[str, Any] = {
    "name": "bench-test",
    "seeds": 16,
    "tasks": [
        {"task": "encoder-10-5-10", "model": {"layers": [10, 5, 10]},
         "stop": {"target": {"quantity": "sse", "below": 0.01}, "max_epochs": 400}},
        {"task": "xor", "stop": {"target": {"quantity": "sse", "below": 0.01},
                                 "max_epochs": 400}},
    ],
    "entries": [
        {"task": "encoder-10-5-10", "name": "iRprop_plus",
         "optimizer": {"name": "rprop", "variant": "iRprop+", "eta_plus": 1.2}},
        {"task": "xor", "name": "momentum",
         "optimizer": {"name": "steepest_descent", "lr": 2.0, "momentum": 0.9}},
    ],
}


@pytest.fixture(scope="module")
def regression_flag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray for the module whose workers carry the injected regression, switched on
    while the returned file exists; with a Ray token of the test's own (Ray 2.60 enables
    token auth for local clusters too, and would otherwise write one to ~/.ray)."""
    folder = tmp_path_factory.mktemp("ray")
    token = folder / "ray-token"
    token.write_text(secrets.token_hex(32))
    flag = folder / "regressed"
    saved = {name: os.environ.get(name) for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={
                 "worker_process_setup_hook": f"{bench_regression.__name__}.install",
                 "env_vars": {"PYTHONPATH": str(REPOSITORY), bench_regression.FLAG: str(flag)}})
    try:
        yield flag
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _bench(home: Path, *arguments: str) -> Any:
    result = CliRunner().invoke(app, ["bench", *arguments], env={"OPTISTUDY_HOME": str(home)})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _write(path: Path, suite: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


def test_run_baseline_check_and_an_injected_regression(regression_flag: Path,
                                                       tmp_path: Path) -> None:
    home = tmp_path / "home"
    suite = _write(tmp_path / "suite.yaml", SUITE)
    store = BenchStore(Home(home), "bench-test")

    first = _bench(home, "run", suite)
    assert first.exit_code == 0, first.output
    assert "encoder-10-5-10/iRprop_plus" in first.output and "stored in" in first.output
    [baseline] = store.run_ids()
    promoted = _bench(home, "baseline", suite, "--from", baseline)
    assert promoted.exit_code == 0 and f"run {baseline}" in promoted.output

    unchanged = _bench(home, "run", suite, "--check")
    assert unchanged.exit_code == 0, unchanged.output
    assert "verdict: UNCHANGED" in unchanged.output
    assert "environment: the same as the baseline's" in unchanged.output
    rerun = store.load(store.run_ids()[-1])
    assert all(result.outcomes() == store.load(baseline).entries[entry].outcomes()
               for entry, result in rerun.entries.items())

    regression_flag.touch()
    try:
        regressed = _bench(home, "run", suite, "--check")
    finally:
        regression_flag.unlink()
    assert regressed.exit_code == 1, regressed.output
    assert "verdict: REGRESSED (1 of 2 entries: encoder-10-5-10/iRprop_plus)" in \
        regressed.output
    assert "significantly slower" in regressed.output
    check = read_json(store.run_dir(store.run_ids()[-1]) / "check.json")
    verdicts = {entry["entry"]: entry["verdict"] for entry in check["entries"]}
    assert verdicts == {"encoder-10-5-10/iRprop_plus": "regressed", "xor/momentum": "unchanged"}
    assert check["entries"][1]["differing_seeds"] == 0  # momentum does not use Rprop

    listed = _bench(home, "list", suite)
    assert listed.exit_code == 0
    assert f"baseline: {baseline}" in listed.output
    assert "regressed vs" in listed.output and "unchanged vs" in listed.output

    _assert_recorded_in_mlflow(home, runs=3)


def _assert_recorded_in_mlflow(home: Path, runs: int) -> None:
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optistudy-bench/bench-test")
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id],
                                 "tags.`optistudy.role` = 'benchmark'")
    assert len(parents) == runs and {p.info.status for p in parents} == {"FINISHED"}
    verdicts = sorted(p.data.tags.get("optistudy.verdict", "-") for p in parents)
    assert verdicts == ["-", "regressed", "unchanged"]
    entries = client.search_runs([experiment.experiment_id],
                                 "tags.`optistudy.role` = 'benchmark-entry'")
    assert len(entries) == 2 * runs
    regressed = [e for e in entries if e.data.tags.get("optistudy.verdict") == "regressed"]
    assert [e.data.tags["optistudy.entry"] for e in regressed] == ["encoder-10-5-10/iRprop_plus"]
    assert regressed[0].data.metrics["check.regressed"] == 1
    assert regressed[0].data.params["config.optimizer.eta_plus"] == "1.2"  # as the suite says
    artifacts = {a.path for a in client.list_artifacts(regressed[0].info.run_id)}
    assert {"seeds.csv", "entry.json"} <= artifacts


def test_a_changed_suite_or_other_seeds_are_refused_before_running(
        regression_flag: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    small = {**SUITE, "entries": SUITE["entries"][1:], "seeds": 4}
    suite = _write(tmp_path / "suite.yaml", small)
    assert _bench(home, "run", suite).exit_code == 0
    run_id = BenchStore(Home(home), "bench-test").run_ids()[0]
    assert _bench(home, "baseline", suite, "--from", run_id).exit_code == 0

    entry = {**small["entries"][0], "optimizer": {"name": "steepest_descent", "lr": 1.0,
                                                  "momentum": 0.9}}
    changed = _bench(home, "run", _write(tmp_path / "changed.yaml",
                                         {**small, "entries": [entry]}), "--check")
    assert changed.exit_code == 2
    assert "the suite changed since baseline run" in changed.output
    assert "xor/momentum: its configuration changed" in changed.output
    reseeded = _bench(home, "run", _write(tmp_path / "seeds.yaml", {**small, "seeds": 5}),
                      "--check")
    assert reseeded.exit_code == 2 and "the seeds differ" in reseeded.output
    missing = _bench(home, "run", suite, "--check", "--baseline", "20990101T000000.000000Z-0")
    assert missing.exit_code == 2 and "has no run" in missing.output
    assert BenchStore(Home(home), "bench-test").run_ids() == [run_id]
