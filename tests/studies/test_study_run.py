"""Studies end to end with a real local Ray and real SQLite Optuna storage: run, list, show,
kill -9 the driver and resume, and a real two-node Ray cluster on this machine."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
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

pytestmark = pytest.mark.slow

COMMAND = str(Path(sys.executable).parent / "optistudy")


def _spec(name: str, trials: int, max_epochs: int = 200, seeds: int = 16) -> dict[str, object]:
    return {
        "name": name,
        "tasks": [{"task": "xor", "stop": {"target": {"quantity": "sse", "below": 0.001},
                                           "max_epochs": max_epochs}}],
        "arms": [
            {"name": "iRprop-plus", "optimizer": "rprop", "fixed": {"variant": "iRprop+"},
             "search": {"delta0": {"low": 0.01, "high": 1.0, "log": True},
                        "eta_plus": {"low": 1.05, "high": 2.0}},
             "defaults": [{"delta0": 0.1, "eta_plus": 1.2}]},
            {"name": "momentum", "optimizer": "steepest_descent",
             "search": {"lr": {"low": 0.05, "high": 5.0, "log": True},
                        "momentum": {"low": 0.0, "high": 0.95}}},
        ],
        "seeds_per_trial": seeds,
        "trials_per_arm": trials,
    }


def _environment(home: Path) -> dict[str, str]:
    """The CLI's environment: the test's data dir, a local Ray, and a Ray token of the
    test's own (Ray 2.60 enables token auth for local clusters too, and would otherwise
    write one to ~/.ray)."""
    environment = dict(os.environ, OPTISTUDY_HOME=str(home),
                       RAY_AUTH_TOKEN_PATH=str(_token(home)))
    environment.pop("RAY_ADDRESS", None)
    return environment


def _token(home: Path) -> Path:
    """The Ray token file of a test (created once; a cluster and its drivers share it)."""
    token = home / "ray-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    return token


def _optistudy(home: Path, *arguments: str,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *arguments], capture_output=True, text=True,
                          timeout=timeout, env=_environment(home), check=False)


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


def _assert_exact_budget(home: Path, study: str, trials: int, seeds: int = 16) -> None:
    for arm in ("iRprop-plus", "momentum"):
        found = _trials(home, f"{study}.xor.{arm}")
        numbers = [t.number for t in found]
        assert sorted(numbers) == list(range(trials)), (arm, numbers)
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in found), (
            arm, [t.state.name for t in found])
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
    listed = _optistudy(tmp_path, "study", "list")
    assert listed.returncode == 0 and "small" in listed.stdout and "complete" in listed.stdout
    assert "8/8" in listed.stdout
    shown = _optistudy(tmp_path, "study", "show", "small")
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
    again = _optistudy(tmp_path, "study", "run", str(spec))  # the same spec: nothing to do
    assert again.returncode == 0 and "continuing it" in again.stdout
    assert "4/4 trials (done)" in again.stdout
    _assert_exact_budget(tmp_path, "small", 4)
    changed = _spec("small", trials=5)
    spec.write_text(yaml.safe_dump(changed))
    refused = _optistudy(tmp_path, "study", "run", str(spec))
    assert refused.returncode == 2 and "exists already with a different spec" in refused.stderr


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
    _assert_exact_budget(tmp_path, "killed", 6, seeds=64)
    _assert_recorded_in_mlflow(tmp_path, "killed", 6, max_epochs=400, seeds=64)
    assert "complete" in _optistudy(tmp_path, "study", "list").stdout


def _end_session(session: int) -> None:
    """Stop what the test started: every process left in the driver's session."""
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_node_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Ray head and a second Ray node on this machine, one CPU each, on a free port, with
    token authentication (a token of the test's own, not ~/.ray's); both started in their
    own sessions and stopped by killing those sessions."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(_token(tmp_path)))
    ray = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    environment = dict(os.environ, RAY_ADDRESS="")
    head = subprocess.Popen([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             *common], env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    try:
        _wait_for_nodes(address, 1)
        worker = subprocess.Popen([ray, "start", f"--address={address}", *common],
                                  env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_for_nodes(address, 2)
        yield address
    finally:
        for process in (worker, head):
            if process is not None:
                _end_session(process.pid)
                process.wait(timeout=30)


def _wait_for_nodes(address: str, count: int) -> None:
    probe = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
             "print(sum(n['Alive'] and n['Resources'].get('CPU', 0) >= 1 for n in ray.nodes()))")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True,
                                 text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            continue
        if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout) >= count:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not reach {count} nodes")


def test_the_same_spec_runs_on_a_two_node_cluster(tmp_path: Path, two_node_cluster: str) -> None:
    spec = tmp_path / "study.yaml"
    # Trials of several seconds each (many of the 4096 seeds never meet the target and run
    # all 3000 epochs): the first two start together, one on each node.
    spec.write_text(yaml.safe_dump(_spec("cluster", trials=4, max_epochs=3000, seeds=4096)))
    run = _optistudy(tmp_path, "study", "run", str(spec), "--address", two_node_cluster)
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_exact_budget(tmp_path, "cluster", 4, seeds=4096)
    nodes = {t.user_attrs["metrics"]["node"] for arm in ("iRprop-plus", "momentum")
             for t in _trials(tmp_path, f"cluster.xor.{arm}")}
    assert len(nodes) == 2, nodes


def _session_processes(session: int, marker: str) -> list[int]:
    """Processes of the given session whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in command and os.getsid(int(entry.name)) == session:
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


def test_a_killed_worker_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    spec_data = _spec("worker", trials=2, max_epochs=3000, seeds=4096)
    spec_data["arms"] = [spec_data["arms"][1]]  # momentum: runs to max_epochs, slowly
    spec_data["seeds_per_trial"] = 4096
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    driver = subprocess.Popen([COMMAND, "study", "run", str(spec)], env=_environment(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    checkpoints = tmp_path / "studies" / "worker" / "checkpoints" / "worker.xor.momentum"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(checkpoints.glob("*.pt")):
            time.sleep(0.2)
        workers = _session_processes(driver.pid, "ray::ImplicitFunc")
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


def test_failing_and_diverging_trials_are_recorded_and_the_study_completes(
        tmp_path: Path) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "faults", "seeds_per_trial": 8, "trials_per_arm": 2,
        "tasks": [{"task": "xor", "stop": {"max_epochs": 50}}],
        "arms": [
            {"name": "broken", "optimizer": "adam", "search": {"lr": {"low": 0.01, "high": 0.1}},
             "overrides": {"model": {"type": "module", "path": "tests.studies.modules:broken_net"},
                           "init": {"scheme": "module"}}},
            {"name": "exploding", "optimizer": "steepest_descent",
             "search": {"lr": {"low": 1.0e30, "high": 1.0e31, "log": True}},
             "overrides": {"model": {"layers": [2, 2, 1], "output": "linear"}}},
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


def test_a_multi_objective_study_records_both_objectives(tmp_path: Path) -> None:
    data = _spec("pareto", trials=3)
    data["arms"] = [{"name": "adam", "optimizer": "adam",
                     "search": {"lr": {"low": 0.01, "high": 0.3, "log": True},
                                "betas[0]": {"low": 0.5, "high": 0.95}}}]
    data["objective"] = "both"
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(data))
    run = _optistudy(tmp_path, "study", "run", str(spec))
    assert run.returncode == 0, run.stderr[-3000:]
    found = _trials(tmp_path, "pareto.xor.adam")
    assert len(found) == 3
    for trial in found:
        metrics = trial.user_attrs["metrics"]
        assert trial.values == [metrics["epochs_penalised_mean"], metrics["success_rate"]]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optistudy/pareto")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`optistudy.role` = 'trial'")
    assert len(runs) == 3
    assert all("hyperparameters.betas.0" in run.data.params for run in runs)


def test_optistudy_ui_serves_the_mlflow_store_on_loopback(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_experiment("optistudy/seen-in-the-ui")
    port = _free_port()
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
