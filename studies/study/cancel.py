"""End what a stopped study left RUNNING: its Optuna trials become FAIL and its MLflow runs
end KILLED. Called once the study's driver is gone (cancelled, or found dead), so that
nothing is left RUNNING for ever."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from studies.study.home import Home
from studies.study.ledger import experiment_name, load
from studies.study.recording import tracking_client


@dataclass(frozen=True)
class Ended:
    """What was ended: Optuna trials failed and MLflow runs killed."""

    trials: int
    runs: int


def end_running(home: Home, name: str) -> Ended:
    """Fail the RUNNING Optuna trials of every (task, arm) of study ``name`` and end its
    RUNNING MLflow runs as KILLED. Call only when no driver of the study is alive: a live one
    would go on writing to them."""
    spec = load(home, name)
    trials = 0
    for task in spec.tasks:
        for arm in spec.arms:
            try:
                study = optuna.load_study(study_name=experiment_name(spec, task, arm),
                                          storage=home.optuna_storage)
            except KeyError:
                continue
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                study.tell(trial.number, state=TrialState.FAIL)
                trials += 1
    client = tracking_client(home)
    experiment = client.get_experiment_by_name(f"optistudy/{spec.name}")
    runs = 0
    if experiment is not None:
        for run in client.search_runs([experiment.experiment_id],
                                      "attributes.status = 'RUNNING'", max_results=50_000):
            client.set_terminated(run.info.run_id, "KILLED")
            runs += 1
    return Ended(trials=trials, runs=runs)
