"""Run a study: for every (task, arm) one Optuna study (persistent storage) searched by one
Ray Tune ``Tuner``; resumable after the driver dies at any moment.

The Optuna storage is the ledger (``studies.study.search.LedgerSearch``): a new driver
re-runs the trials a dead one left RUNNING under their own numbers and asks for new ones up
to the budget. Each trial's metrics are stored with its Optuna trial (user attribute
``metrics``), so the ledger alone gives the comparison table.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Ray Tune's console tables are replaced by optistudy's own progress lines.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from studies import driver_start
from studies.study import batching
from studies.study.arm import Arm
from studies.study.home import Home, read_json, write_json
from studies.study.ledger import completed_trials, experiment_name, record_status
from studies.study.ledger import state as ledger_state
from studies.study.recording import MlflowRecorder, store_created_alongside
from studies.study.search import LedgerSearch, batch_of, reported, work_left
from studies.study.spec import StudySpec, TaskSpec
from studies.study.trainable import SAVE_SECONDS, run_trial

Progress = Callable[[str], None]
MAX_FAILURES = 2
"""A trial whose worker dies is retried this many times before it counts as failed."""


@dataclass
class ArmResult:
    """The trials of one arm on one task, and the best of them."""

    task: str
    arm: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one
    (nothing when the CLI started it already, alongside its imports)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    driver_start.connect(address)


class _ProgressReporter(tune.Callback):
    """Prints trials done / total, the best value so far, elapsed time and an ETA."""

    def __init__(self, label: str, total: int, done: int, metric: str, mode: str,
                 progress: Progress):
        self.label, self.total, self.done = label, total, done
        self.metric, self.mode, self.progress = metric, mode, progress
        self.best: float | None = None
        self.start = time.monotonic()
        self.finished_here = 0

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        """A trial that failed beyond its retries: said plainly, and the study goes on."""
        numbers = [number for number, _ in batch_of(trial.config)]
        self.done += len(numbers)
        self.progress(f"  {self.label}: trial{'s' if len(numbers) > 1 else ''} "
                      f"{', '.join(map(str, numbers))} FAILED after {MAX_FAILURES} retries "
                      f"({trial.error_file or 'see the Ray logs'}); "
                      f"{self.done}/{self.total} trials")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any,
                         **info: Any) -> None:
        """A trial whose worker died (or raised), retried from its latest checkpoint."""
        numbers = ", ".join(str(number) for number, _ in batch_of(trial.config))
        self.progress(f"  {self.label}: trial(s) {numbers} failed (worker lost or error); "
                      f"retried from the latest checkpoint, failure {trial.num_failures} of "
                      f"at most {MAX_FAILURES}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        batch = batch_of(trial.config)
        self.done += len(batch)
        self.finished_here += len(batch)
        for metrics in reported(trial.last_result or {}).values():
            value = metrics.get(self.metric)
            if isinstance(value, int | float) and (
                    self.best is None or (value < self.best if self.mode == "min"
                                          else value > self.best)):
                self.best = float(value)
        elapsed = time.monotonic() - self.start
        remaining = max(0, self.total - self.done)
        eta = elapsed / self.finished_here * remaining
        best = "-" if self.best is None else f"{self.best:.4g}"
        self.progress(f"  {self.label}: {self.done}/{self.total} trials, best {self.metric} "
                      f"{best}, elapsed {elapsed:.0f} s, ETA {eta:.0f} s")


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial of an Optuna study: number, state, params and the metrics it reported."""
    return [{"number": t.number, "state": t.state.name, "params": dict(t.params),
             "metrics": dict(t.user_attrs.get("metrics", {}))}
            for t in study.get_trials(deepcopy=False)]


def _best(trials: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    scored = [t for t in trials if isinstance(t["metrics"].get(metric), int | float)]
    if not scored:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(scored, key=lambda t: sign * float(t["metrics"][metric]))


def best_trial(spec: StudySpec, home: Home, name: str) -> dict[str, Any] | None:
    """The best finished trial of the (task, arm) study ``name`` by the study's objective
    (its first metric), or None."""
    try:
        study = optuna.load_study(study_name=name, storage=home.optuna_storage)
    except KeyError:
        return None
    targets = spec.objective.targets()
    finished = [t for t in trial_records(study) if t["state"] == "COMPLETE"]
    return _best(finished, targets.metrics[0], targets.modes[0])


def _optuna_study(spec: StudySpec, arm: Arm, name: str, storage: str) -> optuna.Study:
    """The (task, arm) Optuna study; created with the arm's published defaults enqueued."""
    directions: list[Any] = list(spec.objective.targets().directions)
    try:
        study = optuna.load_study(study_name=name, storage=storage,
                                  sampler=spec.sampler.build(arm.search))
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                    sampler=spec.sampler.build(arm.search))
    # The defaults are enqueued (in order) before any trial is asked: a study holding only
    # waiting trials holds a prefix of them (a driver killed between creating the study
    # and enqueueing them all left the rest out), and gets the rest now.
    trials = study.get_trials(deepcopy=False)
    if all(t.state == optuna.trial.TrialState.WAITING for t in trials):
        for point in arm.defaults[len(trials):]:
            study.enqueue_trial(dict(point))
    return study


def worker_slots(spec: StudySpec) -> int:
    """How many trials the Ray cluster runs at once with the resources one trial asks."""
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 1) // spec.resources.cpus)
    if spec.resources.gpus > 0:
        slots = min(slots, int(resources.get("GPU", 0) // spec.resources.gpus))
    return max(1, slots)


def checkpoint_seconds() -> float:
    """How often a trial saves its checkpoint: ``OPTISTUDY_CHECKPOINT_SECONDS`` (default
    ``trainable.SAVE_SECONDS``); a killed driver or worker loses at most about this much of
    each running trial's training."""
    text = os.environ.get("OPTISTUDY_CHECKPOINT_SECONDS", "").strip()
    if not text:
        return SAVE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"OPTISTUDY_CHECKPOINT_SECONDS={text!r}: allowed is a number of "
                         "seconds >= 0 (how often a trial saves its checkpoint; default "
                         f"{SAVE_SECONDS:g})")
    return seconds


def _run_arm(spec: StudySpec, task: TaskSpec, arm: Arm, home: Home, address: str | None,
             progress: Progress, save_seconds: float) -> ArmResult:
    name = experiment_name(spec, task, arm)
    targets = spec.objective.targets()
    study = _optuna_study(spec, arm, name, home.optuna_storage)
    orphans, to_ask = work_left(study, spec.trials_per_arm)
    if orphans or to_ask:
        with store_created_alongside(home):
            connect(address)  # Ray starts only for a study with trials left to run
    slots = worker_slots(spec) if ray.is_initialized() else 1
    asha = spec.scheduler.name == "asha" and len(targets.metrics) == 1
    batch = 1 if asha else batching.batch_size(spec.batch_trials, arm, spec.trials_per_arm,
                                               spec.seeds_per_trial, slots)
    searcher = LedgerSearch(study, spec.distributions(arm), spec.trials_per_arm,
                            targets.metrics, targets.modes, batch=batch)
    done = completed_trials(home.optuna_storage, name)
    if searcher.remaining:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, spec_json=spec.model_dump_json(),
                                 task_label=task.name, arm_name=arm.name,
                                 checkpoints=str(home.study_dir(spec.name) / "checkpoints"
                                                 / name), save_seconds=save_seconds),
            {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})
        reporter = _ProgressReporter(f"{task.name}/{arm.name}", spec.trials_per_arm, done,
                                     targets.metrics[0], targets.modes[0], progress)
        recorder = MlflowRecorder(home, spec.name, task.name, arm.name, arm.optimizer,
                                  plots=spec.plots, arm_spec=arm.model_dump(mode="json"),
                                  results=home.ray_results / name)
        scheduler = None
        if asha:
            scheduler = ASHAScheduler(time_attr="epoch", metric=targets.metrics[0],
                                      mode=targets.modes[0],
                                      max_t=task.stop.max_epochs + 1,
                                      grace_period=spec.scheduler.grace_period,
                                      reduction_factor=spec.scheduler.reduction_factor)
        attempt = f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        tuner = tune.Tuner(
            trainable,
            # a concurrency limit lets Ray Tune keep its actors for the next trials
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=searcher.ray_trials, reuse_actors=True,
                                        max_concurrent_trials=slots),
            run_config=tune.RunConfig(
                name=attempt, storage_path=str(home.ray_results / name), verbose=0,
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                callbacks=[reporter, recorder]))
        tuner.fit()
    else:
        recorder = MlflowRecorder(home, spec.name, task.name, arm.name, arm.optimizer,
                                  plots=spec.plots, arm_spec=arm.model_dump(mode="json"),
                                  results=home.ray_results / name)
        progress(f"  {task.name}/{arm.name}: {done}/{spec.trials_per_arm} trials (done)")
    trials = trial_records(study)
    best = _best(trials, targets.metrics[0], targets.modes[0])
    recorder.close(trials, best)
    return ArmResult(task.name, arm.name, trials, best)


def start(spec: StudySpec, home: Home) -> bool:
    """Register a study. The same spec again continues the study (nothing is run twice):
    returns False then. A different spec under an existing name is refused, and so is a
    name the Optuna storage already holds."""
    if registered(spec, home):
        return False
    folder = home.study_dir(spec.name)
    folder.mkdir(parents=True, exist_ok=True)  # left empty by a process killed here
    write_json(folder / "spec.json", spec.model_dump(mode="json"))
    record_status(home, spec.name, state="created", created=time.time())
    return True


def registered(spec: StudySpec, home: Home) -> bool:
    """Whether ``spec`` is registered already (True: ``start`` would continue it), writing
    nothing; a ValueError where ``start`` would refuse it."""
    folder = home.study_dir(spec.name)
    if (folder / "spec.json").exists():  # written atomically, after the folder
        stored = read_json(folder / "spec.json")
        if stored != spec.model_dump(mode="json"):
            raise ValueError(f"a study named {spec.name!r} exists already with a different "
                             "spec: choose another name (or 'optistudy study resume "
                             f"{spec.name}' to continue the one stored)")
        if ledger_state(home, spec.name) == "running":
            raise ValueError(f"study {spec.name!r} is running (another driver is alive)")
        return True
    known = {s.study_name for s in optuna.get_all_study_summaries(home.optuna_storage)} \
        if home.root.exists() else set()
    clash = [n for n in known if n.startswith(spec.name + ".")]
    if clash:
        raise ValueError(f"the Optuna storage already holds studies of {spec.name!r} "
                         f"({', '.join(sorted(clash))}); choose another name")
    return False


def execute(spec: StudySpec, home: Home, *, address: str | None = None,
            progress: Progress = print) -> list[ArmResult]:
    """Run (or continue) every (task, arm) of a registered study to its full budget."""
    save_seconds = checkpoint_seconds()  # a bad setting stops the study before it starts
    home.root.mkdir(parents=True, exist_ok=True)
    record_status(home, spec.name, state="running", driver_pid=os.getpid(), started=time.time())
    outcomes = []
    try:
        for task in spec.tasks:
            for arm in spec.arms:
                outcome = _run_arm(spec, task, arm, home, address, progress, save_seconds)
                outcomes.append(outcome)
                write_json(home.study_dir(spec.name) / "results" / f"{task.name}.{arm.name}.json",
                           {"task": outcome.task, "arm": outcome.arm, "trials": outcome.trials,
                            "best": outcome.best})
    except BaseException:
        record_status(home, spec.name, state="interrupted", ended=time.time())
        raise
    record_status(home, spec.name, state="complete", ended=time.time())
    return outcomes
