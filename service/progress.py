"""How far a study is, read from its ledger (the Optuna storage) and its MLflow experiment."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from service.schemas import ArmProgress, BestTrial, MlflowExperiment
from studies.study import StudySpec
from studies.study.home import Home
from studies.study.ledger import experiment_name
from studies.study.recording import tracking_uri
from studies.study.runner import best_trial

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def arms(home: Home, spec: StudySpec) -> list[ArmProgress]:
    """Trials finished, running and the best so far of every (task, arm)."""
    found = []
    for task in spec.tasks:
        for arm in spec.arms:
            name = experiment_name(spec, task, arm)
            try:
                trials = optuna.load_study(study_name=name, storage=home.optuna_storage
                                           ).get_trials(deepcopy=False)
            except KeyError:
                trials = []
            best = best_trial(spec, home, name) if trials else None
            found.append(ArmProgress(
                task=task.name, arm=arm.name, trials_requested=spec.trials_per_arm,
                trials_finished=sum(t.state in _FINISHED for t in trials),
                trials_running=sum(t.state == TrialState.RUNNING for t in trials),
                best=BestTrial.model_validate(best) if best else None))
    return found


@cache
def tracking(uri: str) -> MlflowClient:
    """The MLflow client of the store at ``uri``, its schema created or upgraded now: the
    service opens the store before it starts any driver, so that two processes never create
    the same SQLite store at once."""
    client = MlflowClient(uri)
    client.search_experiments(max_results=1)
    return client


def mlflow_experiment(home: Home, name: str) -> MlflowExperiment | None:
    """The study's MLflow experiment, once its driver has created it."""
    uri = tracking_uri(home)
    if uri.startswith("sqlite:") and not Path(make_url(uri).database or "").exists():
        return None  # no store yet: the service creates it before it starts a driver
    experiment_name = f"optistudy/{name}"
    experiment = tracking(uri).get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    url = (f"{uri.rstrip('/')}/#/experiments/{experiment.experiment_id}"
           if uri.startswith(("http://", "https://")) else None)
    return MlflowExperiment(experiment_id=experiment.experiment_id,
                            experiment_name=experiment_name, url=url)
