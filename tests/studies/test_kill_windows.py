"""What a driver killed between two writes to the Optuna storage leaves, and what the next
driver makes of it (found by tests/studies/test_kill_points.py, reproduced here exactly):
a trial stored by ``ask`` before all its parameters were, and an arm's study created before
its published defaults were enqueued. Real SQLite storage, no Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from studies.engine import TrainConfig, train
from studies.study import StudySpec, ledger, runner, trial_files
from studies.study.home import Home
from studies.study.mlflow_values import CURVE_KEY, curves, params_of
from studies.study.recording import MlflowRecorder, tracking_client
from studies.study.runner import _optuna_study
from studies.study.search import TRIAL_BATCH, LedgerSearch
from studies.study.trainable import SAVE_SECONDS
from studies.study.trial_files import HISTORY_FILE, RESULT_FILE
from tests.studies.kill_points import study_spec


def _setup(tmp_path: Path) -> tuple[StudySpec, str]:
    return (StudySpec.model_validate(study_spec("windows", trials=3, seeds=2, max_epochs=10)),
            f"sqlite:///{tmp_path / 'optuna.db'}")


def test_an_orphan_left_without_some_parameters_gets_them_suggested(tmp_path: Path) -> None:
    spec, storage = _setup(tmp_path)
    arm = spec.arms[1]  # momentum: lr and momentum searched, no defaults
    space = spec.distributions(arm)
    study = optuna.create_study(study_name="w", storage=storage)
    trial_id = study._storage.create_new_trial(study._study_id)  # ask, killed half way
    study._storage.set_trial_param(trial_id, "lr", 0.5, space["lr"])
    searcher = LedgerSearch(study, space, budget=3, metrics=["epochs_penalised_mean"],
                            modes=["min"])
    [(number, params)] = searcher.suggest("t0")[TRIAL_BATCH]  # type: ignore[index]
    assert number == 0 and set(params) == {"lr", "momentum"} and params["lr"] == 0.5
    assert space["momentum"].low <= params["momentum"] <= space["momentum"].high
    spec.train_config(spec.tasks[0], arm, params)  # trainable: raised before the fix
    stored = study._storage.get_trial(trial_id)
    assert stored.params == params  # the ledger holds what the trial trains


def test_defaults_missing_from_a_study_created_before_a_kill_are_enqueued(
        tmp_path: Path) -> None:
    spec, storage = _setup(tmp_path)
    arm = spec.arms[0]  # iRprop-plus, with its published defaults
    name = "windows.xor.iRprop-plus"
    optuna.create_study(study_name=name, storage=storage)  # killed before enqueueing
    study = _optuna_study(spec, arm, name, storage)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [dict(p) for p in arm.defaults]
    again = _optuna_study(spec, arm, name, storage)  # a further driver adds nothing
    assert len(again.get_trials()) == len(arm.defaults)


def test_mlflow_runs_created_before_a_kill_get_their_params(tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    """A driver killed between MLflow's ``create_run`` and ``log_batch`` leaves an arm run
    and a trial run without params; the next driver's recorder logs them, once (real SQLite
    MLflow store, no Ray)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path / "home")
    client = tracking_client(home)
    experiment = client.create_experiment(
        "optistudy/windows", artifact_location=(home.root / "mlartifacts").as_uri())
    tags = {"optistudy.study": "windows", "optistudy.task": "xor",
            "optistudy.arm": "iRprop-plus", "optistudy.optimizer": "rprop"}
    arm_run = client.create_run(experiment, run_name="xor/iRprop-plus",
                                tags={**tags, "optistudy.role": "arm"}).info.run_id
    trial_run = client.create_run(
        experiment, run_name="xor/iRprop-plus/trial-0",
        tags={**tags, "optistudy.role": "trial", "mlflow.parentRunId": arm_run,
              "optuna.trial_number": "0", "ray.trial_id": "t0"}).info.run_id

    arm_spec = {"optimizer": "rprop", "fixed": {"variant": "iRprop+"}}
    recorder = MlflowRecorder(home, "windows", "xor", "iRprop-plus", "rprop", plots="none",
                              arm_spec=arm_spec)
    assert recorder.parent_id == arm_run and recorder.runs == {0: trial_run}
    assert client.get_run(arm_run).data.params == {
        param.key: param.value for param in params_of({"arm": arm_spec})}
    assert client.get_run(arm_run).data.params["arm.fixed.variant"] == "iRprop+"
    hyperparameters = {"delta0": 0.1, "eta_plus": 1.2}
    recorder._open([(0, hyperparameters)], "t0-resumed")
    params = client.get_run(trial_run).data.params
    assert params == {"hyperparameters.delta0": "0.1", "hyperparameters.eta_plus": "1.2"}
    recorder._open([(0, hyperparameters)], "t0-again")  # a further driver: nothing twice
    assert client.get_run(trial_run).data.params == params


@pytest.mark.parametrize("curves_logged", [False, True])
def test_a_trial_whose_recording_a_kill_cut_short_gets_its_files_and_plots(
        tmp_path: Path, monkeypatch: Any, curves_logged: bool) -> None:
    """A driver killed after Optuna was told a trial finished, before the MLflow writer
    recorded it (run still RUNNING, perhaps with its curves): the next driver's recorder
    records it from the final report Ray Tune kept on disk: curves once, files, the best
    trial's plots (real SQLite MLflow store and trial files of a real training, no Ray)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path / "home")
    config = TrainConfig(task="xor", optimizer={"name": "rprop", "variant": "iRprop+"},
                         seeds=4, stop={"max_epochs": 30})
    result = train(config)
    results = tmp_path / "ray_results" / "windows.xor.iRprop-plus"
    files = results / "attempt-1" / "trial_0" / "checkpoint_000003" / "0"
    files.mkdir(parents=True)
    trial_files.write(result, files)
    first = MlflowRecorder(home, "windows", "xor", "iRprop-plus", "rprop", plots="none")
    run_id, _ = first._trial_run(0, "t0")
    if curves_logged:  # the writer got as far as the curves
        with np.load(files / HISTORY_FILE) as history:
            saved = {name: history[name] for name in history.files}
        members = json.loads((files / RESULT_FILE).read_text())["members"]
        first.client.log_batch(run_id, metrics=curves(
            saved, [m["epochs"] for m in members],
            [m["status"] == "converged" for m in members], {}).metrics())
    client = first.client
    before = len(client.get_metric_history(run_id, CURVE_KEY))

    second = MlflowRecorder(home, "windows", "xor", "iRprop-plus", "rprop", results=results)
    ledger = {"number": 0, "state": "COMPLETE", "params": {"delta0": 0.1},
              "metrics": {"success_rate": 0.5}}
    second.close([ledger], best=ledger)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["success_rate"] == 0.5
    assert run.data.params["hyperparameters.delta0"] == "0.1"
    assert run.data.params["config.optimizer.variant"] == "iRprop+"
    history = client.get_metric_history(run_id, CURVE_KEY)
    if curves_logged:
        assert len(history) == before  # not logged twice
    else:
        assert before == 0
    assert len(history) > 1
    logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {RESULT_FILE, HISTORY_FILE} <= logged
    assert {a.path for a in client.list_artifacts(run_id, "plots")} >= {
        "plots/loss_curves.png", "plots/decision_boundary.png"}
    assert client.get_run(second.parent_id).data.tags["optistudy.best_trial"] == "0"


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_checkpoint_interval_is_refused_before_the_study_starts(
        tmp_path: Path, monkeypatch: Any, value: str) -> None:
    monkeypatch.setenv("OPTISTUDY_CHECKPOINT_SECONDS", value)
    home = Home(tmp_path / "home")
    spec = StudySpec.model_validate(study_spec("interval", 1, 4, 10))
    runner.start(spec, home)
    with pytest.raises(ValueError, match=r"OPTISTUDY_CHECKPOINT_SECONDS='.*': allowed is a "
                                         r"number of seconds >= 0"):
        runner.execute(spec, home)
    assert ledger.state(home, "interval") == "created"  # nothing ran


def test_the_checkpoint_interval_defaults_to_a_second(monkeypatch: Any) -> None:
    monkeypatch.delenv("OPTISTUDY_CHECKPOINT_SECONDS", raising=False)
    assert runner.checkpoint_seconds() == SAVE_SECONDS == 1.0
    monkeypatch.setenv("OPTISTUDY_CHECKPOINT_SECONDS", " 0.25 ")
    assert runner.checkpoint_seconds() == 0.25
