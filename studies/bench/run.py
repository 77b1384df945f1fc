"""Run a suite on Ray: one Ray task per entry, each training the entry's configuration over
all its seeds as one population, on a local Ray started here or the cluster at ``address`` /
``RAY_ADDRESS``. The driver records each entry in MLflow as it finishes and stores the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import ray
import torch

from studies.bench.check import CheckReport
from studies.bench.fingerprint import config_digest, environment, suite_digest
from studies.bench.recording import BenchRecorder
from studies.bench.results import BenchRun, EntryResult
from studies.bench.store import BenchStore, new_run_id
from studies.bench.suite import Suite
from studies.engine import TrainConfig, train
from studies.study.home import Home
from studies.study.runner import connect

Progress = Callable[[str], None]
Check = Callable[[BenchRun], CheckReport]


def train_entry(entry: str, config_json: str, threads: int) -> EntryResult:
    """One entry over its seeds, in a Ray worker: ``threads`` torch threads (one per CPU Ray
    gave the task), no history kept."""
    torch.set_num_threads(threads)
    config = TrainConfig.model_validate_json(config_json)
    result = train(config, history_points=0)
    return EntryResult.of(entry, config_digest(config), result, environment(config.device))


def run_suite(suite: Suite, home: Home, *, address: str | None = None,
              check: Check | None = None, progress: Progress = print
              ) -> tuple[BenchRun, CheckReport | None]:
    """Run every entry of ``suite``, record the run in MLflow (experiment
    ``optistudy-bench/SUITE``: a parent run, a child run per entry), store it under the data
    dir and, given ``check``, compare it with a baseline and record the verdicts too."""
    configs = suite.configs()
    digests = {entry: config_digest(config) for entry, config in configs.items()}
    store = BenchStore(home, suite.name)
    now = datetime.now(UTC)
    run_id = new_run_id(now)
    connect(address)
    started = time.monotonic()
    recorder = BenchRecorder(home, suite.name, run_id, suite_digest(digests))
    try:
        task = ray.remote(train_entry).options(num_cpus=suite.resources.cpus,
                                               num_gpus=suite.resources.gpus)
        threads = max(1, int(suite.resources.cpus))
        pending = {task.remote(entry, config.model_dump_json(), threads): entry
                   for entry, config in configs.items()}
        results: dict[str, EntryResult] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            entry = pending.pop(done[0])
            try:
                results[entry] = ray.get(done[0])
            except ray.exceptions.RayTaskError as error:
                raise RuntimeError(f"entry {entry} failed: {error.cause!r}") from error
            recorder.entry(results[entry])
            progress(f"  {len(results)}/{len(configs)} {_line(results[entry])}")
        device = "cuda" if suite.resources.gpus > 0 else "cpu"
        run = BenchRun(suite=suite.name, run_id=run_id, created=now.isoformat(),
                       suite_digest=suite_digest(digests), environment=environment(device),
                       entries={entry: results[entry] for entry in configs},
                       mlflow_run_id=recorder.parent_id,
                       wall_time_s=round(time.monotonic() - started, 3))
        store.save(run, suite.model_dump(mode="json"))
        report = check(run) if check is not None else None
        if report is not None:
            store.save_check(run_id, report.to_json())
        recorder.finish(run, report)
    except BaseException:
        recorder.fail()
        raise
    return run, report


def _line(result: EntryResult) -> str:
    summary = result.summary
    converged = sum(result.converged)
    median = summary.get("epochs_to_target_median")
    epochs = "-" if median is None else f"{median:g}"
    return (f"{result.entry}: {converged}/{len(result.seeds)} converged, median epochs "
            f"{epochs}, {summary['wall_time_s']:.1f} s")
