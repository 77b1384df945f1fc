"""End what a stopped study left RUNNING: its Optuna trials become FAIL and its MLflow runs
end KILLED. Called once the study's driver is gone (cancelled, or found dead by the
service's reconcile loop, or by ``optistudy study end`` for a study no service watches),
so that nothing is left RUNNING for ever."""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from studies.study.home import Home
from studies.study.ledger import experiment_name, load, record_status, state
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


def end_interrupted(home: Home, name: str) -> Ended:
    """The sweep for a study no service watches: end what its dead driver left RUNNING
    (instead of resuming it) and mark it ``ended``. Refused while its driver is alive."""
    current = state(home, name)
    if current == "running":
        raise ValueError(f"study {name!r} is running (its driver is alive): stop it first")
    ended = end_running(home, name)
    if current == "interrupted":
        record_status(home, name, state="ended", ended=time.time())
    return ended
