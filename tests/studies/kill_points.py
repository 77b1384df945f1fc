"""Driving a study through kill -9 at random moments, and checking what it left: the
machinery of ``tests/studies/test_kill_points.py`` (the test) and ``tests/perf/kill_resume.py``
(its timing against an uninterrupted run).

The moments come from ``random.Random(seed)``. Each of the first four kills is of a kind (one
in start-up, two mid-trial, one anywhere, in a shuffled order) placed within its phase by a
uniform draw, and the fifth is near the end (see ``Moment``): so the kills cover start-up
(before the study is registered too), trials with checkpoints on disk, the last trials and
the recording after them, whatever the machine's speed.

Each kill is ``SIGKILL`` to the driver, then to every process of its session. A driver
resumes with ``study resume NAME``, or ``study run SPEC`` again where the kill came before
the study was registered (``study resume`` answers "no study named" then). Drivers that join
a Ray head leave their trials as actors of their Ray job, which the head kills when the
driver dies: the driving waits for them to be gone before it resumes, and fails if they
linger.
"""


from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes import kill_session, session_members
from tests.ray_cluster import RayHead

BIN = Path(sys.executable).parent
COMMAND = str(BIN / "optistudy")
ARMS = ("iRprop-plus", "momentum")
MIN_OFFSET = 1.0
"""No kill comes sooner than this after a driver's start (s)."""
POLL = 0.1
"""Seconds between looks at a driver, the ledger and the processes."""
ACTORS_GONE_WITHIN = 60.0
"""A killed driver's trial actors must be gone from the Ray head within this (s)."""


@dataclass(frozen=True)
class Estimates:
    """What an uninterrupted run takes (s): its driver's start-up, the rest of its life,
    and one trial's training."""

    startup: float
    work: float
    trial: float


# The test's study: 2 arms x 3 trials of 1024 seeds, at most 2000 epochs (many members of
# both arms run to the end: trials of about half a second, which the test has save a
# checkpoint every 50 ms).
NAME, TRIALS, SEEDS, MAX_EPOCHS, KILLS = "kills", 3, 1024, 2000, 5
ESTIMATES = Estimates(startup=6.0, work=16.0, trial=0.5)
"""What an uninterrupted driver of the test's study takes on a quiet 2-core machine joining
the test's Ray head (s): start-up (imports, joining Ray, loading the study; replaced by the
median of the start-ups seen once a driver got past its own), the rest, one trial."""


def study_spec(name: str, trials: int, seeds: int, max_epochs: int) -> dict[str, Any]:
    """XOR, iRprop+ against momentum, one CPU per trial (two at a time on two CPUs)."""
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
        "resources": {"cpus": 1},
    }


def environment(home: Path, token: Path, address: str | None) -> dict[str, str]:
    """A driver's environment: the data dir, the Ray token, and the Ray head to join (None: a
    local Ray of its own, as ``optistudy`` starts by default)."""
    env = dict(os.environ, OPTISTUDY_HOME=str(home), RAY_AUTH_TOKEN_PATH=str(token))
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "OPTISTUDY_OPTUNA_STORAGE"):
        env.pop(name, None)
    if address is not None:
        env.update(RAY_ADDRESS=address, RAY_AUTH_MODE="token")
    return env


def home_processes(home: Path) -> list[int]:
    """Processes whose environment names ``home`` as OPTISTUDY_HOME: a driver and whatever
    it started (a local Ray), in its session or not."""
    marker = f"OPTISTUDY_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


def wait_until_gone(session: int, marker: str, within: float) -> float:
    """Seconds until no process of ``session`` holds ``marker``; AssertionError beyond
    ``within``."""
    start = time.monotonic()
    while session_members(session, marker or None):
        if time.monotonic() - start > within:
            raise AssertionError(f"processes {session_members(session, marker or None)} "
                                 f"({marker or 'any'}) of session {session} still run "
                                 f"{within:.0f} s after their driver was killed")
        time.sleep(POLL)
    return time.monotonic() - start


def ledger(home: Path) -> dict[str, dict[int, str]]:
    """Every Optuna trial's state by study and number, read from the SQLite storage (empty
    before it exists; a read that meets a lock, or no tables yet, is retried)."""
    store = home / "optuna.db"
    for _ in range(50):
        if not store.exists():
            return {}
        try:
            # read-write: a hot journal a killed writer left is rolled back on opening
            with contextlib.closing(sqlite3.connect(f"file:{store}?mode=rw", uri=True,
                                                    timeout=5)) as connection:
                rows = connection.execute(
                    "SELECT s.study_name, t.number, t.state FROM trials t "
                    "JOIN studies s ON s.study_id = t.study_id").fetchall()
        except sqlite3.OperationalError:  # no tables yet, or a writer's lock
            time.sleep(POLL)
            continue
        found: dict[str, dict[int, str]] = {}
        for study, number, state in rows:
            found.setdefault(study, {})[int(number)] = str(state)
        return found
    raise AssertionError(f"could not read {store}")


def checkpoint_epochs(home: Path, name: str) -> dict[str, int]:
    """The trials' own checkpoints (``checkpoints/EXPERIMENT/HASH.pt``) and their epochs."""
    import torch

    found = {}
    for path in sorted((home / "studies" / name / "checkpoints").glob("*/*.pt")):
        state = torch.load(path, weights_only=True)
        found[f"{path.parent.name}/{path.stem}"] = int(state["epoch"])
    return found


def batch_key(numbers: list[int]) -> str:
    """The checkpoint name of a batch of Optuna trials (as ``trainable.run_trial`` names it)."""
    return hashlib.sha256(",".join(map(str, numbers)).encode()).hexdigest()[:16]


KINDS = ("start-up", "mid-trial", "mid-trial", "anywhere")
"""The kinds of the kills before the last (cycled, in a shuffled order); the last kill is
``near the end``."""


@dataclass(frozen=True)
class Moment:
    """When to kill a driver: a kind of moment and a uniform draw in [0, 1) placing it.

    ``start-up``: draw x the expected start-up after the driver's start (at the end of its
    start-up, its first Ray Tune experiment folder, if that comes first); ``mid-trial``:
    draw x half a trial after the first checkpoint the driver's trials write; ``anywhere``:
    ``MIN_OFFSET`` + draw x the rest of the driver's expected life (when the study's last
    trials start, if that comes first: only the last kill may let them end); ``near the
    end``: draw x a trial after the last trials start, or as soon as all are complete (the
    driver is then recording, writing status). A driver with nothing left to train gets a
    start-up kill."""

    kind: str
    draw: float


def kill_moments(rng: random.Random, kills: int) -> list[Moment]:
    kinds = [KINDS[i % len(KINDS)] for i in range(max(0, kills - 1))]
    rng.shuffle(kinds)
    return [Moment(kind, rng.random()) for kind in [*kinds, "near the end"][:kills]]


@dataclass
class Driver:
    """One driver's life: what ran, how long, how it ended."""

    index: int
    command: str
    pid: int
    started: float
    log: Path
    moment: Moment | None = None
    """When to kill it; None: it runs to its end."""
    kind: str = ""
    """The moment's kind as applied (start-up where nothing was left to train)."""
    offset: float | None = None
    """Seconds after its start of a start-up or anywhere kill."""
    expected: float = 0.0
    """Its expected life (s): start-up and the remaining work."""
    ended: float = 0.0
    startup: float | None = None
    """Seconds until its first Ray Tune experiment folder appeared (imports, Ray, loading
    the study); None: never (killed before, or nothing left to train)."""
    first_checkpoint: float | None = None
    """Seconds until one of its trials wrote a checkpoint (its first trained segment)."""
    last_wave: float | None = None
    """Seconds until it saw the study's last trials running."""
    outcome: str = ""
    """killed, or exited."""
    returncode: int | None = None
    phase: str = ""
    """What the kill hit."""
    running: dict[str, list[int]] = field(default_factory=dict)
    """Trials the kill left RUNNING, by (task, arm) study."""
    checkpoints: dict[str, int] = field(default_factory=dict)
    """The trials' own checkpoints on disk after the kill, and their epochs."""
    actors_gone_s: float | None = None
    strays: int = 0
    """Its processes left outside its session (killed then)."""

    @property
    def life(self) -> float:
        return self.ended - self.started


def launch(index: int, home: Path, spec: Path, name: str, env: dict[str, str],
           logs: Path) -> tuple[Driver, subprocess.Popen[bytes]]:
    """Start a driver in a session of its own: ``study resume`` once the study is registered
    (its spec stored; before, ``study resume`` answers "no study named"), else ``study run``
    (again)."""
    registered = (home / "studies" / name / "spec.json").exists()
    arguments = ["study", "resume", name] if registered else ["study", "run", str(spec)]
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"driver-{index}.log"
    with log.open("w") as out:
        process = subprocess.Popen([COMMAND, *arguments], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Driver(index, " ".join(arguments[:2]), process.pid, time.monotonic(), log), process


def completed(home: Path, name: str) -> int:
    """COMPLETE trials over every (task, arm) study."""
    found = ledger(home)
    return sum(state == "COMPLETE" for arm in ARMS
               for state in found.get(f"{name}.xor.{arm}", {}).values())


def _fresh_checkpoint(home: Path, name: str, since: float) -> bool:
    """Whether a trial wrote its own checkpoint since ``since`` (time.time())."""
    for path in (home / "studies" / name / "checkpoints").glob("*/*.pt"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime >= since:
                return True
    return False


def _due(driver: Driver, now: float, complete: bool, estimates: Estimates) -> bool:
    assert driver.moment is not None
    draw = driver.moment.draw
    if driver.kind == "start-up":
        return driver.startup is not None or now >= (driver.offset or 0.0)
    if driver.kind == "anywhere":
        return now >= (driver.offset or 0.0) or driver.last_wave is not None or complete
    if complete:
        return True
    if driver.kind == "mid-trial":
        return (driver.first_checkpoint is not None
                and now >= driver.first_checkpoint + draw * estimates.trial / 2)
    return driver.last_wave is not None and now >= driver.last_wave + draw * estimates.trial


def drive(driver: Driver, process: subprocess.Popen[bytes], home: Path, name: str, trials: int,
          estimates: Estimates, *, slots: int = 2, timeout: float = 300,
          head: RayHead | None = None) -> Driver:
    """Watch ``driver`` until its moment, then kill it, its session, and wait for its trials
    to be gone (recording what the kill hit and left); or until it exits (no moment)."""
    since = time.time()
    total = trials * len(ARMS)
    while True:
        now = time.monotonic() - driver.started
        if driver.startup is None and any(home.glob(f"ray/*/attempt-*-{driver.pid}")):
            driver.startup = now
        if process.poll() is not None:
            driver.outcome, driver.returncode = "exited", process.returncode
            break
        if driver.first_checkpoint is None and _fresh_checkpoint(home, name, since):
            driver.first_checkpoint = now
        if driver.moment is not None:
            done = completed(home, name)
            if driver.last_wave is None and driver.startup is not None and done >= total - slots:
                driver.last_wave = now
            if _due(driver, now, done >= total, estimates):
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                driver.outcome = "killed"
                break
        if now > timeout:
            kill_session(driver.pid)
            raise AssertionError(f"driver {driver.index} still runs after {timeout:.0f} s: "
                                 f"{driver.log.read_text()[-3000:]}")
        time.sleep(POLL)
    driver.ended = time.monotonic()
    kill_session(driver.pid)  # Ray processes a local driver started live in its session
    wait_until_gone(driver.pid, "", 30)
    strays = [pid for pid in home_processes(home) if pid != os.getpid()]
    for pid in strays:  # beyond its session: they carry this study's data dir, so are its
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    driver.strays = len(strays)
    if driver.outcome != "exited":
        if head is not None:  # the head kills the dead driver's trial actors: wait for it
            driver.actors_gone_s = wait_until_gone(head.session, "ImplicitFunc",
                                                   ACTORS_GONE_WITHIN)
        found = ledger(home)
        driver.running = {study: sorted(n for n, state in states.items() if state == "RUNNING")
                          for study, states in found.items()}
        driver.checkpoints = checkpoint_epochs(home, name)
        driver.phase = _phase(driver, home, name, trials, found)
    return driver


def _phase(driver: Driver, home: Path, name: str, trials: int,
           found: dict[str, dict[int, str]]) -> str:
    if not (home / "studies" / name / "spec.json").exists():
        return "before the study was registered"
    if driver.startup is None and not any(home.glob(f"ray/*/attempt-*-{driver.pid}")):
        return "start-up (imports, Ray, loading the study)"
    done = sum(state == "COMPLETE" for states in found.values() for state in states.values())
    running = sum(len(numbers) for numbers in driver.running.values())
    if done >= trials * len(ARMS):
        return "after the last trial (recording, status)"
    return (f"trials ({done}/{trials * len(ARMS)} done, {running} running, "
            f"{len(driver.checkpoints)} checkpoint(s) on disk)")


@dataclass
class Study:
    """A study driven to its end through kills: the drivers in order, and the wall time
    from the first start to the last driver's exit."""

    drivers: list[Driver]
    wall: float


def run_with_kills(home: Path, spec: Path, name: str, trials: int, env: dict[str, str],
                   moments: list[Moment], estimates: Estimates, *, head: RayHead | None = None,
                   show: Callable[[str], None] = print, timeout: float = 300) -> Study:
    """Run the study, killing driver i at ``moments[i]``, resuming until a driver exits.
    Expected start-ups are the median of those seen so far (``estimates.startup`` before
    any); expected remaining work the share of ``estimates.work`` of the trials not yet
    complete."""
    drivers: list[Driver] = []
    start = time.monotonic()
    for index in range(len(moments) + 1):
        seen = [d.startup for d in drivers if d.startup is not None]
        startup = statistics.median(seen) if seen else estimates.startup
        done = completed(home, name) / (trials * len(ARMS))
        driver, process = launch(index, home, spec, name, env, home.parent / "drivers")
        driver.expected = startup + estimates.work * (1 - done)
        if index < len(moments):
            moment = driver.moment = moments[index]
            driver.kind = "start-up" if done >= 1 else moment.kind
            if driver.kind == "start-up":
                driver.offset = 0.5 + moment.draw * max(0.0, startup - 0.5)
            elif driver.kind == "anywhere":
                driver.offset = MIN_OFFSET + moment.draw * max(0.0, driver.expected - MIN_OFFSET)
        drive(driver, process, home, name, trials, estimates, timeout=timeout, head=head)
        drivers.append(driver)
        show(describe(driver, estimates))
        if driver.outcome == "exited":
            break
    return Study(drivers, time.monotonic() - start)


def describe(driver: Driver, estimates: Estimates) -> str:
    head = f"driver {driver.index} ({driver.command}): "
    if driver.outcome == "exited" or driver.moment is None:
        return (head + f"{driver.outcome} {driver.returncode} after {driver.life:.1f} s "
                f"(start-up {_seconds(driver.startup)})")
    draw = driver.moment.draw
    planned = {"start-up": f"{driver.offset or 0:.1f} s or the end of start-up",
               "anywhere": f"{driver.offset or 0:.1f} s of ~{driver.expected:.0f} s",
               "mid-trial": f"first checkpoint + {draw * estimates.trial / 2:.1f} s",
               "near the end": f"last trials' start + {draw * estimates.trial:.1f} s"}
    kind = driver.kind + (" (nothing left to train)" if driver.kind != driver.moment.kind
                          else "")
    running = {study.rsplit(".", 1)[-1]: numbers for study, numbers in driver.running.items()
               if numbers}
    return (head + f"{kind} kill (draw {draw:.2f}: {planned[driver.kind]}) at "
            f"{driver.life:.1f} s (start-up {_seconds(driver.startup)}), in {driver.phase}; "
            f"left RUNNING {running or 'none'}, checkpoints {driver.checkpoints or 'none'}"
            + ("" if driver.actors_gone_s is None else
               f"; its actors gone {driver.actors_gone_s:.1f} s after")
            + (f"; {driver.strays} of its processes outside its session" if driver.strays
               else ""))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# ---------------------------------------------------------------------------------- checks


def assert_exact_budget(home: Path, name: str, trials: int,
                        seeds: int) -> dict[str, list[Any]]:
    """Each (task, arm) Optuna study holds trials 0..N-1, all COMPLETE; returns them."""
    import optuna

    storage = f"sqlite:///{home / 'optuna.db'}"
    found = {}
    for arm in ARMS:
        study = optuna.load_study(study_name=f"{name}.xor.{arm}", storage=storage)
        ledger_trials = study.get_trials(deepcopy=False)
        numbers = [t.number for t in ledger_trials]
        assert sorted(numbers) == list(range(trials)), (arm, numbers)
        states = [t.state.name for t in ledger_trials]
        assert states == ["COMPLETE"] * trials, (arm, states)
        assert all(t.user_attrs["metrics"]["members"] == seeds for t in ledger_trials)
        found[arm] = ledger_trials
    default = found["iRprop-plus"][0]
    assert default.params == {"delta0": 0.1, "eta_plus": 1.2}  # the published default first
    return found


def assert_one_run_per_trial(home: Path, name: str, trials: dict[str, list[Any]]) -> None:
    """MLflow: one finished parent run per arm with its params; under it exactly one
    finished run per Optuna trial, with the trial's hyperparameters and metrics, and its
    curves logged once (no step twice); no run RUNNING."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"optistudy/{name}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "", max_results=1000)
    assert [(r.info.run_name, r.info.status) for r in runs if r.info.status != "FINISHED"] == []
    parents = [r for r in runs if r.data.tags.get("optistudy.role") == "arm"]
    assert sorted(r.data.tags["optistudy.arm"] for r in parents) == sorted(ARMS)
    for parent in parents:
        arm = parent.data.tags["optistudy.arm"]
        assert parent.data.params["arm.optimizer"] in ("rprop", "steepest_descent"), arm
        children = [r for r in runs if r.data.tags.get("optistudy.role") == "trial"
                    and r.data.tags["optistudy.arm"] == arm]
        counts = Counter(int(r.data.tags["optuna.trial_number"]) for r in children)
        assert counts == Counter(range(len(trials[arm]))), (arm, sorted(counts.items()))
        ledger_trials = {t.number: t for t in trials[arm]}
        for run in children:
            trial = ledger_trials[int(run.data.tags["optuna.trial_number"])]
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert run.data.metrics["success_rate"] == (
                trial.user_attrs["metrics"]["success_rate"]), (arm, trial.number)
            assert {key.removeprefix("hyperparameters."): float(value)
                    for key, value in run.data.params.items()
                    if key.startswith("hyperparameters.")} == trial.params, (arm, trial.number)
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_median")]
            assert len(steps) == len(set(steps)), (arm, trial.number, "curve logged twice")


def assert_checkpoints_resumed(drivers: list[Driver], trials: dict[str, list[Any]],
                               name: str) -> list[str]:
    """Every trial a kill left RUNNING with a checkpoint on disk continued from it: the
    driver after the last kill that left it RUNNING finished it, starting at that kill's
    checkpoint (``resumed_at_epoch``; later, had Ray retried it). Returns what was checked,
    one line per trial."""
    lines = []
    for arm in ARMS:
        study = f"{name}.xor.{arm}"
        for trial in trials[arm]:
            last = next((d for d in reversed(drivers) if trial.number in d.running.get(study, [])),
                        None)
            if last is None:
                continue
            epochs = [epoch for key, epoch in last.checkpoints.items()
                      for numbers in _windows(last.running[study])
                      if trial.number in numbers and key == f"{study}/{batch_key(numbers)}"]
            resumed = int(trial.user_attrs["metrics"]["resumed_at_epoch"])
            held = f"a checkpoint at epoch {epochs[0]}" if epochs else "no checkpoint"
            lines.append(f"{arm} trial {trial.number}: left RUNNING by driver {last.index} "
                         f"with {held}, completed from epoch {resumed}")
            if epochs:
                assert resumed >= epochs[0], lines[-1]
    return lines


def _windows(numbers: list[int]) -> list[list[int]]:
    """Every run of consecutive entries of ``numbers`` (the batches they may have formed)."""
    return [numbers[i:j] for i in range(len(numbers)) for j in range(i + 1, len(numbers) + 1)]


