"""Kill -9 the study driver at five random moments of one study, resuming after each (issue 8):
the study ends with exactly the requested trials (numbers 0..N-1, all COMPLETE), one MLflow
run per trial, none RUNNING, and is listed complete; and no work a checkpoint held is lost:
every trial a kill left unfinished with a checkpoint continues from that checkpoint.

The seed of the moments is printed with them and what each kill hit
(``OPTISTUDY_KILL_SEED=N`` replays a seed's draws; the moments are partly times, so a replay
hits the same phases only roughly); how they are drawn is in ``tests/studies/kill_points.py``.
The drivers join the session's shared Ray head, so that a restart costs no Ray start. No
wall time is asserted (this runs on shared machines): ``tests/perf/kill_resume.py`` measures
it against an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.ray_cluster import RayHead
from tests.studies.kill_points import (
    ARMS,
    COMMAND,
    ESTIMATES,
    KILLS,
    MAX_EPOCHS,
    NAME,
    SEEDS,
    TRIALS,
    assert_checkpoints_resumed,
    assert_exact_budget,
    assert_one_run_per_trial,
    describe,
    environment,
    kill_moments,
    run_with_kills,
    study_spec,
)

pytestmark = pytest.mark.slow


def test_five_random_kills_and_resumes_end_with_exactly_the_budget(
        tmp_path: Path, shared_ray: RayHead) -> None:
    seed = int(os.environ.get("OPTISTUDY_KILL_SEED") or secrets.randbelow(2**32))
    moments = kill_moments(random.Random(seed), KILLS)
    print(f"kill seed {seed} (OPTISTUDY_KILL_SEED={seed} replays it): "
          + ", ".join(f"{m.kind} ({m.draw:.3f})" for m in moments))
    home = tmp_path / "home"
    home.mkdir()
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(study_spec(NAME, TRIALS, SEEDS, MAX_EPOCHS)))
    env = environment(home, shared_ray.token, shared_ray.address)
    # trials of half a second save a checkpoint every 50 ms, not every second: so that
    # mid-trial kills find checkpoints on disk to resume from
    env["OPTISTUDY_CHECKPOINT_SECONDS"] = "0.05"
    try:
        study = run_with_kills(home, spec, NAME, TRIALS, env, moments, ESTIMATES,
                               head=shared_ray)
    finally:
        for log in sorted((tmp_path / "drivers").glob("*.log")):
            print(f"--- {log.name}: {log.read_text()[-1500:]}")
    drivers = study.drivers
    checking = time.monotonic()
    assert [d.outcome for d in drivers] == ["killed"] * KILLS + ["exited"], [
        describe(d, ESTIMATES) for d in drivers]
    assert drivers[-1].returncode == 0, drivers[-1].log.read_text()[-3000:]
    assert [d.strays for d in drivers] == [0] * len(drivers)
    with subprocess.Popen([COMMAND, "study", "list"], stdout=subprocess.PIPE, text=True,
                          env=env) as listed:  # meanwhile, the checks below
        trials = assert_exact_budget(home, NAME, TRIALS, SEEDS)
        assert_one_run_per_trial(home, NAME, trials)
        resumed = assert_checkpoints_resumed(drivers, trials, NAME)
        print("\n".join(resumed))
        assert any("with a checkpoint" in line for line in resumed), (
            "no kill left a trial with a checkpoint", [describe(d, ESTIMATES) for d in drivers])
        out, _ = listed.communicate(timeout=120)
    line = next(row for row in out.splitlines() if row.startswith(NAME + " "))
    assert line.split()[1:] == ["complete", f"{TRIALS * len(ARMS)}/{TRIALS * len(ARMS)}"], line
    print(f"{KILLS} kills and resumes in {study.wall:.1f} s (drivers' lives "
          f"{sum(d.life for d in drivers):.1f} s); checks in {time.monotonic() - checking:.1f} s")
