"""Studies end to end with a real local Ray and real SQLite Optuna storage: run, list, show,
kill -9 the driver and resume, and a real two-node Ray cluster on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner, Result

from service.cli import app
from tests.processes import kill_session, session_members
from tests.ray_cluster import RayHead, free_port, new_token, wait_for_nodes
from tests.studies.kill_points import study_spec

pytestmark = pytest.mark.slow

COMMAND = str(Path(sys.executable).parent / "optistudy")


def _spec(name: str, trials: int, max_epochs: int = 200, seeds: int = 16) -> dict[str, Any]:
    """XOR, iRprop+ (with its published defaults first) against momentum."""
    return study_spec(name, trials, seeds, max_epochs)


@pytest.fixture(autouse=True)
def _ray_for_drivers(request: pytest.FixtureRequest, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The drivers' Ray: the session's shared head, or (marked ``local_ray``) a local Ray of
    each driver's own, with a Ray token of the test's (Ray 2.60 enables token auth for local
    clusters too, and would otherwise write one to ~/.ray)."""
    if request.node.get_closest_marker("local_ray"):
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(new_token(tmp_path)))
        return
    head: RayHead = request.getfixturevalue("shared_ray")
    for name, value in head.environment().items():
        monkeypatch.setenv(name, value)


def _environment(home: Path) -> dict[str, str]:
    """The CLI's environment: the test's data dir and the test's Ray (``_ray_for_drivers``)."""
    return dict(os.environ, OPTISTUDY_HOME=str(home))


def _optistudy(home: Path, *arguments: str,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *arguments], capture_output=True, text=True,
                          timeout=timeout, env=_environment(home), check=False)


def _in_process(home: Path, *arguments: str) -> Result:
    """The command line run in this process: for the commands that start no Ray, whose
    own process would mostly spend its time importing."""
    return CliRunner().invoke(app, list(arguments), env={"OPTISTUDY_HOME": str(home)})


def _trials(home: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def _assert_recorded_in_mlflow(home: Path, study: str, trials: int, *, max_epochs: int = 200,
                               seeds: int = 16) -> None:
    """One run per Optuna trial under a parent run per arm, none left RUNNING, with the
    trial's metrics, per-epoch curves and artifacts."""
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"optistudy/{study}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`optistudy.role` != 'report'", max_results=1000)
    assert all(run.info.status == "FINISHED" for run in runs), [
        (r.info.run_name, r.info.status) for r in runs if r.info.status != "FINISHED"]
    parents = {r.data.tags["optistudy.arm"]: r for r in runs
               if r.data.tags.get("optistudy.role") == "arm"}
    assert set(parents) == {"iRprop-plus", "momentum"}
    for arm, parent in parents.items():
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in children)
        assert numbers == list(range(trials)), (arm, numbers)
        ledger = {t.number: t for t in _trials(home, f"{study}.xor.{arm}")}
        for child in children:
            trial = ledger[int(child.data.tags["optuna.trial_number"])]
            assert child.data.metrics["success_rate"] == trial.user_attrs["metrics"]["success_rate"]
            assert child.data.tags["optistudy.optimizer"] in ("rprop", "steepest_descent")
        # a trial a killed driver never saw end has its ledger metrics only ("unknown")
        seen = [r for r in children if r.data.tags["ray.trial_id"] != "unknown"]
        _assert_trial_run(client, seen[0], study, arm, max_epochs, seeds)
        best = parent.data.tags["optistudy.best_trial"]
        best_run = next(r for r in children if r.data.tags["optuna.trial_number"] == best)
        assert parent.data.metrics["best_success_rate"] == best_run.data.metrics["success_rate"]
        assert parent.data.params["arm.optimizer"] == best_run.data.tags["optistudy.optimizer"]
        if best_run not in seen:
            continue
        plots = {"plots/loss_curves.png", "plots/decision_boundary.png"}
        if arm == "iRprop-plus":
            plots.add("plots/optimizer_state.png")  # step sizes, sign changes
        assert {a.path for a in client.list_artifacts(best_run.info.run_id, "plots")} == plots
        assert {a.path for a in client.list_artifacts(parent.info.run_id, "best_trial")} == {
            path.replace("plots/", "best_trial/") for path in plots} | {"best_trial/seeds.csv"}


def _assert_trial_run(client: MlflowClient, run: Any, study: str, arm: str, max_epochs: int,
                      seeds: int) -> None:
    """A trial's run: its tags link it to Optuna and Ray; its params hold the full
    configuration; its metrics the summary, per-epoch curves and optimizer telemetry; its
    artifacts the per-seed files."""
    tags = run.data.tags
    assert tags["optistudy.study"] == study and tags["optistudy.task"] == "xor"
    assert tags["optistudy.arm"] == arm and tags["optuna.trial_number"].isdigit()
    params = run.data.params
    assert params["config.task"] == "xor" and params["config.stop.max_epochs"] == str(max_epochs)
    assert params["config.loss"] == "sse" and params["config.seeds"] == str(seeds)
    searched = ("delta0", "eta_plus") if arm == "iRprop-plus" else ("lr", "momentum")
    for name in searched:
        assert float(params[f"config.optimizer.{name}"]) == float(
            params[f"hyperparameters.{name}"])
    metrics = run.data.metrics
    assert {"success_rate", "epochs_penalised_mean", "diverged_rate"} <= set(metrics)
    assert ("epochs_to_target_median" in metrics) == (metrics["success_rate"] > 0)
    run_id = run.info.run_id
    curve = client.get_metric_history(run_id, "loss_median")
    assert 10 < len(curve) <= 201 and curve[0].step == 0
    assert client.get_metric_history(run_id, "frac_converged")[-1].value == (
        run.data.metrics["success_rate"])
    if arm == "iRprop-plus":
        for name in ("step_size_p50", "step_size_frac_at_min", "sign_change_rate"):
            assert client.get_metric_history(run_id, f"optimizer/{name}"), name
    assert {"history.npz", "result.json", "seeds.csv", "weights.npz"} <= {
        a.path for a in client.list_artifacts(run_id)}
    with tempfile.TemporaryDirectory() as folder:
        table = Path(client.download_artifacts(run_id, "seeds.csv", folder)).read_text()
        weights = np.load(client.download_artifacts(run_id, "weights.npz", folder))
        assert table.splitlines()[0].startswith("seed,status,epochs,final_loss")
        assert len(table.splitlines()) == seeds + 1
        assert weights["initial"].shape == weights["final"].shape == (seeds, 9)
        assert list(weights["seeds"]) == list(range(seeds))


def _ray_errors(home: Path) -> str:
    """The end of every Ray trial error file under ``home``: what a failed check shows."""
    return "\n".join(f"{path.relative_to(home)}:\n{path.read_text()[-1500:]}"
                     for path in sorted((home / "ray").glob("**/error.txt")))


def _assert_exact_budget(home: Path, study: str, trials: int, seeds: int = 16) -> None:
    for arm in ("iRprop-plus", "momentum"):
        found = _trials(home, f"{study}.xor.{arm}")
        numbers = [t.number for t in found]
        assert sorted(numbers) == list(range(trials)), (arm, numbers)
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in found), (
            arm, [t.state.name for t in found], _ray_errors(home))
        assert all(t.user_attrs["metrics"]["members"] == seeds for t in found)


def test_a_small_study_runs_end_to_end(tmp_path: Path) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(_spec("small", trials=4)))
    run = _optistudy(tmp_path, "study", "run", str(spec))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "xor/iRprop-plus: 4/4 trials" in run.stdout
    table = run.stdout[run.stdout.index("\nxor\n"):]
    assert "iRprop-plus" in table and "momentum" in table and "best configuration" in table
    _assert_exact_budget(tmp_path, "small", 4)
    _assert_recorded_in_mlflow(tmp_path, "small", 4)
    default = _trials(tmp_path, "small.xor.iRprop-plus")[0]
    assert default.params == {"delta0": 0.1, "eta_plus": 1.2}  # the published defaults first
    listed = _in_process(tmp_path, "study", "list")
    assert listed.exit_code == 0 and "small" in listed.stdout and "complete" in listed.stdout
    assert "8/8" in listed.stdout
    shown = _in_process(tmp_path, "study", "show", "small")
    assert "xor/momentum: 4/4 trials" in shown.stdout
    reported = _optistudy(tmp_path, "study", "report", "small", "--seeds", "24")
    assert reported.returncode == 0, reported.stderr[-3000:]
    markdown = (tmp_path / "studies" / "small" / "report.md").read_text()
    assert "re-run on 24 fresh seeds (16..39)" in markdown
    assert "| iRprop-plus |" in markdown and "| momentum |" in markdown
    assert "McNemar p" in markdown and "Best on xor:" in markdown
    assert "![xor: performance profile on the fresh seeds](report/xor-profile.png)" in markdown
    page = (tmp_path / "studies" / "small" / "report.html").read_text()
    assert "<table>" in page and "McNemar p" in page
    assert page.count("data:image/png;base64,") == markdown.count("![")
    figures = {p.name for p in (tmp_path / "studies" / "small" / "report").iterdir()}
    assert {"xor-profile.png", "xor-epochs.png", "xor-iRprop-plus-importance.png",
            "xor-iRprop-plus-slice.png", "xor-momentum-slice.png"} <= figures
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optistudy/small")
    assert experiment is not None
    report_runs = client.search_runs([experiment.experiment_id],
                                     "tags.`optistudy.role` = 'report'")
    assert len(report_runs) == 1
    assert {a.path for a in client.list_artifacts(report_runs[0].info.run_id)} == {
        "report.md", "report.html", "report"}
    again = _in_process(tmp_path, "study", "run", str(spec))  # the same spec: nothing to do
    assert again.exit_code == 0 and "continuing it" in again.stdout
    assert "4/4 trials (done)" in again.stdout
    _assert_exact_budget(tmp_path, "small", 4)
    changed = _spec("small", trials=5)
    spec.write_text(yaml.safe_dump(changed))
    refused = _in_process(tmp_path, "study", "run", str(spec))
    assert refused.exit_code == 2 and "exists already with a different spec" in refused.output


def test_a_killed_driver_resumes_to_exactly_the_budget(tmp_path: Path) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(_spec("killed", trials=6, max_epochs=400, seeds=64)))
    driver = subprocess.Popen([COMMAND, "study", "run", str(spec)], env=_environment(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (tmp_path / "optuna.db").exists():
                try:
                    done = [t for t in _trials(tmp_path, "killed.xor.iRprop-plus")
                            if t.state == optuna.trial.TrialState.COMPLETE]
                except KeyError:
                    done = []
                if len(done) >= 2:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the study did not complete two trials in time")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        _end_session(driver.pid)
    listed = _optistudy(tmp_path, "study", "list")
    assert "interrupted" in listed.stdout
    resumed = _optistudy(tmp_path, "study", "resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    print(resumed.stdout)  # shown when a check below fails
    _assert_exact_budget(tmp_path, "killed", 6, seeds=64)
    _assert_recorded_in_mlflow(tmp_path, "killed", 6, max_epochs=400, seeds=64)
    assert "complete" in _optistudy(tmp_path, "study", "list").stdout


def _end_session(session: int) -> None:
    """Stop what the test started: every process left in the driver's session."""
    kill_session(session)


_FAST_NODE_DEATH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
"""The head's settings in the two-node tests: a node that stops answering is declared dead
after about 2 s (Ray's defaults: 5 failed health checks 3 s apart, about 15 s), so its trials
are retried sooner, and never on a node that is gone."""


class _Cluster:
    """A two-node Ray cluster on this machine: its address, the Ray ids of its head and of
    its second node, and the second node's ``ray start`` (the leader of that node's
    session)."""

    def __init__(self, address: str, head_node: str, worker_node: str,
                 worker: subprocess.Popen[bytes]) -> None:
        self.address, self.head_node, self.worker_node = address, head_node, worker_node
        self.worker = worker


@pytest.fixture
def two_node_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Cluster]:
    """A Ray head and a second Ray node on this machine, one CPU each, on a free port, with
    token authentication (a token of the test's own, not ~/.ray's); both started in their
    own sessions and stopped by killing every process of those sessions (Ray's workers have
    process groups of their own)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(new_token(tmp_path)))
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    environment = dict(os.environ, RAY_ADDRESS="")
    head = subprocess.Popen([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             *common], env={**environment, **_FAST_NODE_DEATH},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    worker = None
    try:
        [head_node] = wait_for_nodes(address, 1)
        worker = subprocess.Popen([ray, "start", f"--address={address}", *common],
                                  env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        [worker_node] = set(wait_for_nodes(address, 2)) - {head_node}
        yield _Cluster(address, head_node, worker_node, worker)
    finally:
        for process in (worker, head):
            if process is not None:
                _stop_node(process)




def _stop_node(node: subprocess.Popen[bytes]) -> None:
    """Stop a Ray node as a lost machine stops: SIGKILL to every process of its session (its
    ``ray start``, raylet, workers and the rest, whatever their process group)."""
    kill_session(node.pid)
    node.wait(timeout=30)


def _wait_for_checkpointed_trials(checkpoints: Path, count: int, node: subprocess.Popen[bytes],
                                  driver: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``count`` trials in flight have each written a checkpoint to
    ``checkpoints`` (a trial deletes its own when it ends) and a trial actor runs on
    ``node``."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            pytest.fail(f"the study ended (exit {driver.returncode}) before the node was "
                        f"stopped:\n{log.read_text()[-3000:]}")
        if (len(list(checkpoints.glob("*.pt"))) >= count
                and session_members(node.pid, "ray::ImplicitFunc")):
            return
        time.sleep(0.2)
    pytest.fail(f"no {count} checkpointed trials, one on the second node, in time:\n"
                f"{log.read_text()[-3000:]}")


def _assert_one_run_per_trial(home: Path, study: str, trials: int) -> None:
    """Exactly one MLflow run per Optuna trial, none left RUNNING (all FINISHED), each with
    its trial's final metrics: a retried trial continued its own run."""
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"optistudy/{study}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`optistudy.role` = 'trial'",
                              max_results=1000)
    arms = ("iRprop-plus", "momentum")
    keys = sorted((r.data.tags["optistudy.arm"], int(r.data.tags["optuna.trial_number"]))
                  for r in runs)
    assert keys == [(arm, number) for arm in arms for number in range(trials)], keys
    assert all(r.info.status == "FINISHED" for r in runs), [
        (r.info.run_name, r.info.status) for r in runs]
    ledger = {(arm, t.number): t for arm in arms for t in _trials(home, f"{study}.xor.{arm}")}
    for run in runs:
        trial = ledger[run.data.tags["optistudy.arm"], int(run.data.tags["optuna.trial_number"])]
        assert run.data.metrics["success_rate"] == trial.user_attrs["metrics"]["success_rate"]


@pytest.mark.local_ray  # its cluster's processes are its own
def test_a_two_node_study_survives_a_stopped_node(tmp_path: Path,
                                                  two_node_cluster: _Cluster) -> None:
    cluster = two_node_cluster
    spec = tmp_path / "study.yaml"
    # Trials of several seconds each (many of the 4096 seeds never meet the target and run
    # all 3000 epochs), checkpointed every 300 epochs: the two trials of the first arm run
    # together, one on each node (one CPU each), and the second node is stopped while both
    # are in flight.
    spec.write_text(yaml.safe_dump(_spec("cluster", trials=2, max_epochs=3000, seeds=4096)))
    log = tmp_path / "driver.log"
    with log.open("wb") as output:
        driver = subprocess.Popen([COMMAND, "study", "run", str(spec), "--address",
                                   cluster.address], env=_environment(tmp_path), stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_checkpointed_trials(
            tmp_path / "studies" / "cluster" / "checkpoints" / "cluster.xor.iRprop-plus", 2,
            cluster.worker, driver, log)
        _stop_node(cluster.worker)
        # the ledger's trials in flight (the node's own cannot end before it is retried)
        in_flight = [("iRprop-plus", t.number) for t in _trials(tmp_path, "cluster.xor.iRprop-plus")
                     if t.state == optuna.trial.TrialState.RUNNING]
        try:
            driver.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the study did not end after the node stopped:\n{log.read_text()[-3000:]}")
    finally:
        _end_session(driver.pid)
    print(log.read_text())  # shown when a check below fails
    assert driver.returncode == 0
    _assert_exact_budget(tmp_path, "cluster", 2, seeds=4096)
    metrics = {(arm, t.number): t.user_attrs["metrics"] for arm in ("iRprop-plus", "momentum")
               for t in _trials(tmp_path, f"cluster.xor.{arm}")}
    # the trial on the stopped node went on from its checkpoint on the head; every other
    # trial ran once, uninterrupted, on the head
    retried = [key for key, values in metrics.items() if values["resumed_at_epoch"] > 0]
    assert len(retried) == 1 and retried[0] in in_flight, (retried, in_flight)
    nodes = {values["node"].rpartition(":")[2] for values in metrics.values()}
    assert nodes == {cluster.head_node}, (nodes, cluster.head_node, cluster.worker_node)
    _assert_one_run_per_trial(tmp_path, "cluster", 2)


@pytest.mark.local_ray  # finds its trial's worker in the driver's session
def test_a_killed_worker_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    spec_data = _spec("worker", trials=2, max_epochs=3000, seeds=4096)
    spec_data["arms"] = [spec_data["arms"][1]]  # momentum: runs to max_epochs, slowly
    spec_data["seeds_per_trial"] = 4096
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    log = tmp_path / "driver.log"
    with log.open("wb") as output:
        driver = subprocess.Popen([COMMAND, "study", "run", str(spec)],
                                  env=_environment(tmp_path), stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    checkpoints = tmp_path / "studies" / "worker" / "checkpoints" / "worker.xor.momentum"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(checkpoints.glob("*.pt")):
            time.sleep(0.2)
        workers = session_members(driver.pid, "ray::ImplicitFunc")
        assert workers, "no trial worker found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        assert driver.wait(timeout=400) == 0
    finally:
        _end_session(driver.pid)
    found = _trials(tmp_path, "worker.xor.momentum")
    assert sorted(t.number for t in found) == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in found)
    assert max(t.user_attrs["metrics"]["resumed_at_epoch"] for t in found) > 0
    assert "retried from the latest checkpoint, failure 1 of at most 2" in log.read_text()


def test_failing_diverging_and_multi_objective_trials_are_recorded_and_the_study_completes(
        tmp_path: Path) -> None:
    """One study (one driver) for three checks: an arm whose model raises fails its trials
    after their retries, an arm whose weights explode records divergence, and with two
    objectives every trial is told both."""
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "faults", "seeds_per_trial": 8, "trials_per_arm": 2, "objective": "both",
        "tasks": [{"task": "xor", "stop": {"max_epochs": 50}}],
        "arms": [
            {"name": "broken", "optimizer": "adam", "search": {"lr": {"low": 0.01, "high": 0.1}},
             "overrides": {"model": {"type": "module", "path": "tests.studies.modules:broken_net"},
                           "init": {"scheme": "module"}}},
            {"name": "exploding", "optimizer": "steepest_descent",
             "search": {"lr": {"low": 1.0e30, "high": 1.0e31, "log": True}},
             "overrides": {"model": {"layers": [2, 2, 1], "output": "linear"}}},
            {"name": "adam", "optimizer": "adam",
             "search": {"lr": {"low": 0.01, "high": 0.3, "log": True},
                        "betas[0]": {"low": 0.5, "high": 0.95}}},
        ],
    }))
    environment = _environment(tmp_path)
    environment["PYTHONPATH"] = str(Path(__file__).parents[2])
    run = subprocess.run([COMMAND, "study", "run", str(spec)], capture_output=True, text=True,
                         timeout=400, env=environment, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "FAILED after 2 retries" in run.stdout
    broken = _trials(tmp_path, "faults.xor.broken")
    assert [t.state for t in broken] == [optuna.trial.TrialState.FAIL] * 2
    exploding = _trials(tmp_path, "faults.xor.exploding")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in exploding)
    assert all(t.user_attrs["metrics"]["members_diverged"] == 8 for t in exploding)
    assert all(t.user_attrs["metrics"]["diverged_rate"] == 1.0 for t in exploding)
    found = _trials(tmp_path, "faults.xor.adam")
    assert len(found) == 2
    for trial in found + exploding:
        metrics = trial.user_attrs["metrics"]
        assert trial.values == [metrics["epochs_penalised_mean"], metrics["success_rate"]]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optistudy/faults")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`optistudy.role` = 'trial' "
                              "and tags.`optistudy.arm` = 'adam'")
    assert len(runs) == 2
    assert all("hyperparameters.betas.0" in run.data.params for run in runs)


def test_asha_stops_poor_trials_early_and_they_count_in_the_budget(tmp_path: Path) -> None:
    data = _spec("asha", trials=8, max_epochs=2000, seeds=64)
    data["arms"] = [data["arms"][1]]  # momentum: lr from 0.05 to 5 gives very unequal trials
    data["scheduler"] = {"name": "asha", "grace_period": 300, "reduction_factor": 2}
    data["resources"] = {"cpus": 2}  # one trial at a time, so ASHA compares finished rungs
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(data))
    run = _optistudy(tmp_path, "study", "run", str(spec))
    assert run.returncode == 0, run.stderr[-3000:]
    found = _trials(tmp_path, "asha.xor.momentum")
    assert sorted(t.number for t in found) == list(range(8))
    states = [t.state for t in found]
    assert optuna.trial.TrialState.PRUNED in states
    assert optuna.trial.TrialState.COMPLETE in states
    assert optuna.trial.TrialState.RUNNING not in states


def test_optistudy_ui_serves_the_mlflow_store_on_loopback(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_experiment("optistudy/seen-in-the-ui")
    port = free_port()
    server = subprocess.Popen([COMMAND, "ui", "--port", str(port)], env=_environment(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search"
                        "?max_results=10", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "optistudy/seen-in-the-ui" in body
    finally:
        _end_session(server.pid)
        server.wait(timeout=30)
