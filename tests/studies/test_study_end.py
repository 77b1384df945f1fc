"""``optistudy study end``: the sweep for a study no service watches. A study whose driver
died leaves Optuna trials and MLflow runs RUNNING (Optuna's heartbeat does not cover the
ask/tell interface Ray's searcher uses); ``study resume`` re-runs them, ``study end`` ends
them instead. Real SQLite stores and the command line (in this process); the dead driver is
a process that was started and reaped, so its pid names no process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner, Result

from service.cli import app
from studies.study import StudySpec, ledger, runner
from studies.study.home import Home, read_json, write_json
from studies.study.ledger import experiment_name
from studies.study.recording import tracking_client


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _orphaned_study(root: Path, driver_pid: int) -> tuple[Home, list[str]]:
    """A registered study whose driver ``driver_pid`` left, per (task, arm), one finished
    and one RUNNING Optuna trial and a RUNNING MLflow run; returns its (task, arm) names."""
    spec = StudySpec.model_validate({
        "name": "orphaned", "seeds_per_trial": 2, "trials_per_arm": 3,
        "tasks": [{"task": "xor", "stop": {"max_epochs": 10}}],
        "arms": [{"name": "rprop", "optimizer": "rprop",
                  "search": {"delta0": {"low": 0.01, "high": 1.0, "log": True}}},
                 {"name": "adam", "optimizer": "adam",
                  "search": {"lr": {"low": 0.001, "high": 0.1, "log": True}}}]})
    home = Home(root)
    assert runner.start(spec, home)
    names = [experiment_name(spec, task, arm) for task in spec.tasks for arm in spec.arms]
    client = tracking_client(home)
    experiment = client.create_experiment(f"optistudy/{spec.name}")
    for name in names:
        study = optuna.create_study(study_name=name, storage=home.optuna_storage)
        study.tell(study.ask(), 1.0)
        study.ask()
        client.create_run(experiment, tags={"optistudy.role": "trial"})
    status = home.study_dir(spec.name) / "status.json"
    write_json(status, {**read_json(status), "state": "running", "driver_pid": driver_pid})
    return home, names


def _cli(root: Path, *arguments: str) -> Result:
    return CliRunner().invoke(app, list(arguments), env={"OPTISTUDY_HOME": str(root)})


def test_end_fails_what_a_dead_driver_left_running(tmp_path: Path) -> None:
    home, names = _orphaned_study(tmp_path, _dead_pid())
    assert ledger.state(home, "orphaned") == "interrupted"
    ended = _cli(tmp_path, "study", "end", "orphaned")
    assert ended.exit_code == 0, ended.output
    assert "2 Optuna trial(s) failed, 2 MLflow run(s) killed" in ended.stdout
    for name in names:
        states = [t.state for t in optuna.load_study(
            study_name=name, storage=home.optuna_storage).get_trials()]
        assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optistudy/orphaned")
    assert experiment is not None
    assert [r.info.status for r in client.search_runs([experiment.experiment_id])] == [
        "KILLED", "KILLED"]
    listed = _cli(tmp_path, "study", "list").stdout
    assert "ended" in listed and "2/6" in listed
    again = _cli(tmp_path, "study", "end", "orphaned")  # nothing left to end
    assert again.exit_code == 0 and "0 Optuna trial(s) failed, 0 MLflow" in again.stdout


@pytest.mark.parametrize(("study", "message"), [
    ("orphaned", "is running (its driver is alive)"),
    ("missing", "no study named 'missing'"),
])
def test_end_refuses_a_live_study_and_an_unknown_name(tmp_path: Path, study: str,
                                                      message: str) -> None:
    home, names = _orphaned_study(tmp_path, os.getpid())  # this process: alive
    refused = _cli(tmp_path, "study", "end", study)
    assert refused.exit_code == 2 and message in refused.output
    for name in names:  # nothing was ended
        states = [t.state for t in optuna.load_study(
            study_name=name, storage=home.optuna_storage).get_trials()]
        assert optuna.trial.TrialState.RUNNING in states
