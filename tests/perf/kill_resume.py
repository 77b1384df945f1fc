"""Kill and resume: the same study run uninterrupted and through random ``kill -9``s.

Not a test: a benchmark (issue 8). In one invocation it runs one study (XOR, iRprop+ against
momentum, as ``tests/studies/test_kill_points.py`` does; ``--trials`` per arm of ``--seeds``
seeds, at most ``--max-epochs``) through the real command line, each time in a fresh data
dir:

1. uninterrupted: one ``optistudy study run`` to its end; then
2. with ``--kills`` kills: ``SIGKILL`` to the driver, then to its whole session, at moments
   drawn from ``random.Random(--seed)`` as the test draws them (in start-up, mid-trial,
   anywhere, and the last near the end; see the test's ``Moment``), with run 1's start-up,
   work and trial times as the expected ones, each followed by ``optistudy study resume``
   (``study run`` again where the kill came before the study was registered), until a driver
   ends;

checks that run 2 ended with exactly the budget (trials 0..N-1 COMPLETE, one finished MLflow
run per trial), and prints both wall times and their ratio (goal <= 1.5x), also counting
only the drivers' lives (without this script's waits between them), and with every driver's
start-up excluded (until its first Ray Tune experiment folder appears: imports, starting or
joining Ray, loading the study; a driver killed before that counts whole), and with each
driver's time until its trials' first checkpoint excluded (start-up and Ray Tune starting
the trials' actors: what is left is training and recording). ``--ray local``
(the default) lets every driver start a local Ray of its own, as ``optistudy`` does alone;
``--ray head`` has them join one Ray head started first, as the test does.

The cost of a kill is mostly fixed (a new driver's imports and Ray start, its trials' actors),
so the ratio depends on the study's length; the script prints the cost per kill and the study
length from which the ratio holds.

Usage: ``.venv/bin/python tests/perf/kill_resume.py [--seed 0] [--ray local|head] [--trials 8]``
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.*

NAME = "kill-resume"


def _study(kp: Any, folder: Path, args: argparse.Namespace, token: Path,
           address: str | None, moments: list[Any], estimates: Any,
           head: Any) -> tuple[Any, Path]:
    """One run of the study in ``folder`` (its own data dir and spec)."""
    import yaml

    folder.mkdir()
    home = folder / "home"
    home.mkdir()
    spec = folder / "study.yaml"
    spec.write_text(yaml.safe_dump(kp.study_spec(NAME, args.trials, args.seeds,
                                                 args.max_epochs)))
    env = kp.environment(home, token, address)
    study = kp.run_with_kills(home, spec, NAME, args.trials, env, moments, estimates,
                              head=head, show=lambda line: print("  " + line),
                              timeout=args.timeout)
    last = study.drivers[-1]
    if last.outcome != "exited" or last.returncode != 0:
        raise SystemExit(f"the study did not end: {kp.describe(last, estimates)}\n"
                         f"{last.log.read_text()[-3000:]}")
    return study, home


def _startup(driver: Any) -> float:
    """A driver's start-up; the whole of its life where it was killed before the end of it."""
    return float(driver.startup if driver.startup is not None else driver.life)


def _untrained(driver: Any) -> float:
    """A driver's time until one of its trials wrote a checkpoint (start-up, then Ray Tune
    starting the trials' actors); the whole of its life where none did."""
    return float(driver.first_checkpoint if driver.first_checkpoint is not None
                 else driver.life)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="trials per arm")
    parser.add_argument("--seeds", type=int, default=4096, help="seeds per trial")
    parser.add_argument("--max-epochs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--ray", choices=("local", "head"), default="local",
                        help="each driver starts a local Ray (local) or joins one head (head)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds a driver may run before the benchmark gives up")
    args = parser.parse_args()

    import torch  # noqa: F401  (the kill run reads checkpoints: imported before its timing)

    from tests import ray_cluster
    from tests.studies import kill_points as kp

    moments = kp.kill_moments(random.Random(args.seed), args.kills)
    print(f"study: 2 arms x {args.trials} trials x {args.seeds} seeds, <= {args.max_epochs} "
          f"epochs; Ray: {args.ray}; kill seed {args.seed}: "
          + ", ".join(f"{m.kind} ({m.draw:.3f})" for m in moments))
    with tempfile.TemporaryDirectory(prefix="kill-resume-") as temporary:
        folder = Path(temporary)
        token = ray_cluster.new_token(folder)
        with (ray_cluster.ray_head(token) if args.ray == "head" else _no_head()) as head:
            address = None if head is None else head.address
            print("uninterrupted:")
            unknown = kp.Estimates(0.0, 0.0, 0.0)
            whole, home = _study(kp, folder / "whole", args, token, address, [], unknown, head)
            driver = whole.drivers[0]
            startup = _startup(driver)
            trials = kp.assert_exact_budget(home, NAME, args.trials, args.seeds)
            trial = statistics.median(t.user_attrs["metrics"]["wall_time_s"]
                                      for arm in trials.values() for t in arm)
            estimates = kp.Estimates(startup, driver.life - startup, trial)
            print(f"  expected: start-up {startup:.1f} s, the rest {driver.life - startup:.1f} s,"
                  f" a trial's training {trial:.1f} s")
            print(f"with {args.kills} kills:")
            killed, home = _study(kp, folder / "killed", args, token, address, moments,
                                  estimates, head)
            trials = kp.assert_exact_budget(home, NAME, args.trials, args.seeds)
            kp.assert_one_run_per_trial(home, NAME, trials)
            for line in kp.assert_checkpoints_resumed(killed.drivers, trials, NAME):
                print("  " + line)
    _report(whole, killed, args.kills)


@contextlib.contextmanager
def _no_head() -> Iterator[None]:
    yield None


def _report(whole: Any, killed: Any, kills: int) -> None:
    lives = sum(d.life for d in killed.drivers)
    startups = sum(_startup(d) for d in killed.drivers)
    alone = whole.drivers[0]
    done_kills = sum(d.outcome != "exited" for d in killed.drivers)
    print(f"checks passed: exactly the budget, one finished MLflow run per trial, "
          f"{done_kills} of {kills} kills done")
    print(f"uninterrupted : {whole.wall:7.1f} s wall (driver {alone.life:.1f} s, "
          f"start-up {_startup(alone):.1f} s)")
    print(f"with kills    : {killed.wall:7.1f} s wall ({len(killed.drivers)} drivers: "
          f"{lives:.1f} s alive, start-ups {startups:.1f} s; "
          f"{killed.wall - lives:.1f} s between them, waiting for their processes to end)")
    print(f"ratio         : {killed.wall / whole.wall:.2f}x wall, {lives / alone.life:.2f}x "
          f"drivers' time (goal <= 1.5x)")
    work = (lives - startups) / max(1e-9, alone.life - _startup(alone))
    print(f"ratio without start-ups: {work:.2f}x (drivers' time less each driver's start-up)")
    per_kill = (killed.wall - whole.wall) / max(1, done_kills)
    print(f"cost per kill : {per_kill:.1f} s (a new driver's start-up, its trials' actors, the "
          f"training lost since the last checkpoint): the ratio stays <= 1.5x for studies "
          f"that run >= {2 * done_kills * per_kill:.0f} s uninterrupted with {done_kills} kills")
    untrained = sum(_untrained(d) for d in killed.drivers)
    trained = (lives - untrained) / max(1e-9, alone.life - _untrained(alone))
    print(f"ratio from first training: {trained:.2f}x (drivers' time less each one's time "
          f"until its trials' first checkpoint: {untrained:.1f} s with kills, "
          f"{_untrained(alone):.1f} s uninterrupted)")


if __name__ == "__main__":
    main()
