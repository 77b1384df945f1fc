"""Study speed: a whole optistudy study against the same question wired by hand.

Not a test: a benchmark (issue 7). In one invocation it runs

1. the product: one study of ``--trials`` Optuna trials x ``--seeds`` seeds on XOR 2-2-1
   (iRprop+ searching delta0 / eta_plus; SSE < 0.001, at most 2000 epochs) exactly as
   ``optistudy study run`` does it (Ray Tune + LedgerSearch over SQLite Optuna + MLflow
   recording with the best trial's plots), in a temporary OPTISTUDY_HOME, imports and Ray
   start-up included; and
2. the hand-wired pipeline: one Ray Tune trial per training run (one seed), ``OptunaSearch``
   over an SQLite ``RDBStorage``, a plain torch loop (one 2-2-1 sigmoid MLP, torch.optim.Rprop,
   the same stop rule) that logs the SSE to MLflow (SQLite) with ``mlflow.log_metric`` every
   epoch, on ``--baseline-runs`` runs;

and prints runs per second for both, their ratio (against the issue's floor of 1,000x), where
the product's time goes, and the driver's peak RSS. Usage:
``.venv/bin/python tests/perf/study_speed.py [--trials 100 --seeds 100 --baseline-runs 40]``.

Each half runs in a fresh Python process of this script (the hidden ``--part`` flag) with a
data dir, a Ray token and a Ray temp dir of its own (``RAY_TMPDIR``, short, under /tmp), one
after the other; the parent only collects their JSON results and prints the comparison. Both
halves in one process failed: a second ``ray.init()`` without an address reads the default
``/tmp/ray/ray_current_cluster``, which any ``ray start --head`` on the machine (the tests'
clusters, other work) leaves naming its GCS, and so joins that cluster, or waits for its dead
GCS for ever, instead of starting a local Ray. A temp dir of each half's own has no such file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAX_EPOCHS = 2000
TARGET_SSE = 0.001
SPENT: dict[str, float] = defaultdict(float)
"""Seconds the driver spent in each instrumented method (see ``_instrument``)."""
TRIAL_TIMES: list[float] = []
"""Ray's ``time_total_s`` of every finished product trial (the trainable's own wall time)."""
TRIAL_PIDS: set[int] = set()
"""The worker processes the product's trials ran in (Ray actors started, reuse counted once)."""


def _timed(owner: Any, method: str, bucket: str) -> None:
    """Wrap ``owner.method`` so that the time spent in it adds up in ``SPENT[bucket]``, and
    the CPU time its thread spent in it in ``SPENT[bucket + "_cpu"]`` (on a thread of its own,
    wall time also counts waiting for the GIL that other threads hold)."""
    original: Callable[..., Any] = getattr(owner, method)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[bucket] += time.perf_counter() - start
            SPENT[bucket + "_cpu"] += time.thread_time() - cpu_start

    setattr(owner, method, wrapper)


def _timed_context(owner: Any, name: str, bucket: str) -> None:
    """Wrap the context manager ``owner.name`` so that the time from entering it to leaving
    it adds up in ``SPENT[bucket]``."""
    original: Callable[..., Any] = getattr(owner, name)

    @contextlib.contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = time.perf_counter()
        try:
            with original(*args, **kwargs) as value:
                yield value
        finally:
            SPENT[bucket] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def _instrument() -> None:
    """Time the product's driver-side parts without changing what they do."""
    from ray import tune

    from studies.study import plots, recording, runner
    from studies.study.mlflow_writes import Writer
    from studies.study.recording import MlflowRecorder
    from studies.study.search import LedgerSearch

    _timed(runner, "connect", "ray_start")  # the wait for Ray begun before the imports,
    _timed_context(runner, "store_created_alongside", "ray_and_store")  # with the store's
    _timed(recording, "_create_store", "mlflow_store")  # creation on a thread
    _timed(plots, "render", "render")  # drawing the best trial's plots: the report

    for method in ("on_trial_start", "on_trial_complete", "on_trial_error"):
        _timed(MlflowRecorder, method, "mlflow_in_fit")  # Ray calls these inside Tuner.fit
    for method in ("_open", "_complete_batch", "_fail"):
        _timed(MlflowRecorder, method, "mlflow_writes")  # on the recorder's writer thread
    _timed(Writer, "stop", "mlflow_drain")  # close() waiting for the writer
    for method in ("__init__", "close"):
        _timed(MlflowRecorder, method, "mlflow_per_arm")
    _timed(LedgerSearch, "suggest", "optuna")
    _timed(LedgerSearch, "on_trial_complete", "optuna")
    _timed(tune.Tuner, "fit", "tuner_fit")
    completed = MlflowRecorder.on_trial_complete

    def keep_trial_time(self: Any, iteration: int, trials: list[Any], trial: Any,
                        **info: Any) -> None:
        TRIAL_TIMES.append(float((trial.last_result or {}).get("time_total_s", 0.0)))
        TRIAL_PIDS.add(int((trial.last_result or {}).get("pid", 0)))
        completed(self, iteration, trials, trial, **info)

    MlflowRecorder.on_trial_complete = keep_trial_time  # type: ignore[method-assign]


def _environment(home: Path) -> None:
    """A data dir, a local Ray and a Ray token of this half's own (as tests/studies do; Ray
    keeps the first token it read for the whole process, hence one half per process)."""
    home.mkdir(parents=True, exist_ok=True)
    token = home.parent / "ray-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    os.environ["OPTISTUDY_HOME"] = str(home)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "OPTISTUDY_OPTUNA_STORAGE"):
        os.environ.pop(name, None)


def _spec(trials: int, seeds: int) -> dict[str, Any]:
    return {
        "name": "speed",
        "tasks": [{"task": "xor",
                   "model": {"type": "mlp", "layers": [2, 2, 1], "activation": "sigmoid"},
                   "init": {"scheme": "haykin"}, "loss": "sse", "mode": "batch",
                   "stop": {"target": {"quantity": "sse", "below": TARGET_SSE},
                            "max_epochs": MAX_EPOCHS}}],
        "arms": [{"name": "iRprop-plus", "optimizer": "rprop", "fixed": {"variant": "iRprop+"},
                  "search": {"delta0": {"low": 0.01, "high": 1.0, "log": True},
                             "eta_plus": {"low": 1.05, "high": 2.0}}}],
        "seeds_per_trial": seeds,
        "trials_per_arm": trials,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_product(trials: int, seeds: int, home: Path) -> dict[str, float]:
    """The product's study, timed from its imports to the end of its recording."""
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    from studies import driver_start

    driver_start.begin(None)  # as the CLI does: Ray starts on a thread during the imports
    from studies.study import StudySpec, runner
    from studies.study.home import Home

    imported = time.perf_counter()
    _instrument()
    spec = StudySpec.model_validate(_spec(trials, seeds))
    study_home = Home(home)
    runner.start(spec, study_home)
    outcomes = runner.execute(spec, study_home, progress=lambda line: None)  # as the CLI does
    wall = time.perf_counter() - start
    finished = [t for o in outcomes for t in o.trials if t["state"] == "COMPLETE"]
    assert len(finished) == trials, f"{len(finished)} of {trials} trials completed"
    return {**SPENT, "wall": wall, "imports": imported - start,
            "ray_thread": driver_start.seconds_to_start or 0.0,
            "driver_cpu": _cpu_seconds() - cpu_start,
            "execute": time.perf_counter() - imported - SPENT["ray_and_store"],
            # a batch's trials each report the population's training time: count it once
            "engine": sum(float(t["metrics"]["wall_time_s"]) / float(t["metrics"]["batch_size"])
                          for t in finished),
            "batches": len({t["metrics"]["wall_time_s"] for t in finished}),
            "model_epochs": sum(float(t["metrics"]["model_epochs"]) for t in finished),
            "success": sum(float(t["metrics"]["success_rate"]) for t in finished) / trials,
            "ray_trials": len(TRIAL_TIMES), "in_trials": sum(TRIAL_TIMES),
            "worker_processes": len(TRIAL_PIDS),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _ray_temp_dir() -> str:
    """The Ray temp dir that a plain ``ray.init`` uses here (``$RAY_TMPDIR/ray``)."""
    from ray._common.utils import get_default_ray_temp_dir

    return str(get_default_ray_temp_dir())


def hand_wired_trial(config: dict[str, Any]) -> None:
    """One training run as a hand-wiring user writes it: one network, torch.optim.Rprop,
    the SSE logged to MLflow every epoch, the outcome reported to Ray Tune at the end."""
    import mlflow
    import torch
    from ray import tune
    from torch import nn

    torch.set_num_threads(1)
    seed = zlib.crc32(tune.get_context().get_trial_id().encode())  # one seed per run
    torch.manual_seed(seed)
    inputs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    targets = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)
    net = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()).double()
    optimizer = torch.optim.Rprop(net.parameters(), lr=config["delta0"],
                                  etas=(0.5, config["eta_plus"]))
    mlflow.set_tracking_uri(config["tracking_uri"])
    mlflow.set_experiment("hand-wired")
    epochs, converged = MAX_EPOCHS, False
    with mlflow.start_run(run_name=f"seed-{seed}"):
        mlflow.log_params({"delta0": config["delta0"], "eta_plus": config["eta_plus"],
                           "seed": seed})
        for epoch in range(MAX_EPOCHS + 1):
            optimizer.zero_grad()
            loss = ((targets - net(inputs)) ** 2).sum()
            mlflow.log_metric("sse", loss.item(), step=epoch)
            if loss.item() < TARGET_SSE:
                epochs, converged = epoch, True
                break
            loss.backward()
            optimizer.step()
        mlflow.log_metric("epochs", epochs)
    tune.report({"epochs": epochs, "converged": converged})


def run_hand_wired(runs: int, home: Path) -> dict[str, float]:
    """The hand-wired pipeline on ``runs`` runs (a fresh local Ray, started inside the timing,
    in this process's own Ray temp dir)."""
    import mlflow
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    _environment(home)
    start = time.perf_counter()
    # address="local": never join a cluster some ray_current_cluster file names
    ray.init(address="local", _temp_dir=_ray_temp_dir(), include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    ray_started = time.perf_counter()
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("hand-wired")  # the store is created once, by the driver
    space: dict[str, optuna.distributions.BaseDistribution] = {
        "delta0": optuna.distributions.FloatDistribution(0.01, 1.0, log=True),
        "eta_plus": optuna.distributions.FloatDistribution(1.05, 2.0)}
    search = OptunaSearch(space, metric="epochs", mode="min", study_name="hand-wired",
                          storage=optuna.storages.RDBStorage(f"sqlite:///{home / 'optuna.db'}"),
                          sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(
        tune.with_resources(hand_wired_trial, {"cpu": 1}),
        param_space={"tracking_uri": tracking_uri},
        tune_config=tune.TuneConfig(search_alg=search, num_samples=runs),
        run_config=tune.RunConfig(name="hand-wired", storage_path=str(home / "ray"), verbose=0))
    results = tuner.fit()
    end = time.perf_counter()
    assert not results.errors, results.errors
    assert len(results) == runs, f"{len(results)} of {runs} runs"
    converged = sum(bool((results[i].metrics or {}).get("converged")) for i in range(len(results)))
    ray.shutdown()
    return {"wall": end - start, "ray_start": ray_started - start, "fit": end - ray_started,
            "success": converged / runs}


FLOOR = 1000
"""The issue's floor: the product's runs/s over the hand-wired pipeline's."""


def _report(trials: int, seeds: int, product: dict[str, float],
            hand: dict[str, float] | None, runs: int) -> None:
    total = trials * seeds
    wall = product["wall"]
    rate = total / wall
    print(f"product     : {total:,} runs ({trials} trials x {seeds} seeds) in {wall:.1f} s "
          f"= {rate:,.1f} runs/s  (goal: <= 30 s, i.e. >= {total / 30:,.0f} runs/s)")
    print(f"              success rate {product['success']:.1%}, "
          f"{product['model_epochs']:,.0f} model-epochs")
    if hand is not None:
        _report_hand_wired(rate, hand, runs)
    _report_product(trials, product)


def _report_hand_wired(rate: float, hand: dict[str, float], runs: int) -> None:
    hand_rate, hand_fit_rate = runs / hand["wall"], runs / hand["fit"]
    print(f"hand-wired  : {runs} runs in {hand['wall']:.1f} s = {hand_rate:.3f} runs/s "
          f"(Ray start {hand['ray_start']:.1f} s; without it {hand_fit_rate:.3f} runs/s), "
          f"success rate {hand['success']:.1%}")
    ratio, ratio_fit = rate / hand_rate, rate / hand_fit_rate
    print(f"ratio       : {rate:,.1f} / {hand_rate:.3f} runs/s = {ratio:,.0f}x; floor "
          f"{FLOOR:,}x: {'MET' if ratio >= FLOOR else 'NOT MET'}")
    print(f"              (against the hand-wired rate without its Ray start: {ratio_fit:,.0f}x; "
          f"floor {'met' if ratio_fit >= FLOOR else 'NOT met'})")


def mlflow_cost(product: dict[str, float]) -> dict[str, float]:
    """What MLflow recording costs the study, in seconds: the time the driver's main thread
    spends in it (the callbacks, each arm's start and end but for drawing the plots, which
    is the report) plus the CPU time MLflow's threads take from the cores (the writer's,
    overlapping the trials), and for the store's creation (on a thread, overlapping the
    start of Ray when that is still going on) the longer of the driver's wait for it and its
    CPU time: the CPU it takes while waited for is in the wait. Wall time on the writer's
    thread is not counted: it also holds the time it waits for the GIL that the main thread
    holds."""
    wait = product["ray_and_store"] - product["ray_start"]
    parts = {"callbacks": product["mlflow_in_fit"],
             "arm start and end": product["mlflow_per_arm"] - product["mlflow_drain"]
             - product["render"],
             "writer CPU": product["mlflow_writes_cpu"],
             "store creation (wait or CPU)": max(wait, product["mlflow_store_cpu"])}
    return {**parts, "total": sum(parts.values()), "store wait": wait}


def _report_product(trials: int, product: dict[str, float]) -> None:
    wall = product["wall"]
    slots = max(1, int(os.cpu_count() or 1))
    in_trials = product["in_trials"]
    fit = product["tuner_fit"]
    cost = mlflow_cost(product)
    other_driver = product["execute"] - fit - product["mlflow_per_arm"]

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"  {label:<34}{seconds:8.2f} s {100 * seconds / wall:5.1f}%  {note}")

    print("where the product's time goes (driver wall time; % of the product's wall):")
    line("imports (studies, ray, optuna...)", product["imports"],
         f"(Ray starting on a thread meanwhile, as the CLI does: {product['ray_thread']:.2f} s "
         "in all)")
    line("Ray start: the rest, waited for", product["ray_start"])
    line("  MLflow store created alongside", product["mlflow_store"],
         f"(a thread; {product['mlflow_store_cpu']:.2f} s CPU; waited for after Ray "
         f"started: {cost['store wait']:.2f} s)")
    line("Tuner.fit", fit, "(the trials, incl. the callbacks below)")
    line("  engine (sum of trials' training)", product["engine"],
         f"/ {slots} slots = {product['engine'] / slots:.2f} s of wall")
    line("  trials' other work (sum)", in_trials - product["engine"],
         "(spec, model build, checkpoints, trial files)")
    line("  scheduling / idle slots", fit - in_trials / slots,
         "(Tuner.fit minus trials' time per slot)")
    line("  Optuna ask/tell (driver)", product["optuna"])
    line("  MLflow callbacks (event loop)", product["mlflow_in_fit"], "(hand the writes over)")
    line("  MLflow trial runs (writer)", product["mlflow_writes"],
         f"(a thread overlapping the trials; {product['mlflow_writes_cpu']:.2f} s CPU)")
    line("MLflow per arm (recorder)", product["mlflow_per_arm"] - product["render"],
         f"(parent run, close; {product['mlflow_drain']:.2f} s of it waiting for the writer)")
    line("report: best trial's plots drawn", product["render"], "(logged to MLflow above)")
    line("other driver work", other_driver, "(ledger, Optuna study, status files)")
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cost.items()
                      if name not in ("total", "store wait"))
    print(f"  MLflow in all: {cost['total']:.2f} s = {100 * cost['total'] / wall:.1f}% of the "
          f"wall (goal <= 10%): {parts}")
    ray_trials = int(product["ray_trials"])
    print(f"  {trials} Optuna trials in {ray_trials} Ray trials (batched: one population "
          "of configurations x seeds each)")
    print(f"  Ray trials: {ray_trials}, mean {in_trials / max(1, ray_trials):.3f} s "
          f"each (Ray time_total_s), engine {product['engine'] / max(1, ray_trials):.3f} s each, "
          f"{product['model_epochs'] / max(product['engine'], 1e-9):,.0f} model-epochs/s")
    print(f"  trials ran in {int(product['worker_processes'])} worker processes (Ray actors; "
          f"reuse_actors=True); driver CPU {product['driver_cpu']:.1f} s (it shares the cores "
          "with the trials)")
    print(f"peak RSS of the driver after the product's study: {product['peak_rss_mib']:,.0f} MiB")


def run_part(part: str, trials: int, seeds: int, runs: int, data: Path) -> dict[str, float]:
    """One half, in this process (a child of ``main``): returns its measurements."""
    if part == "product":
        _environment(data / "home")
        return run_product(trials, seeds, data / "home")
    return run_hand_wired(runs, data / "home")


def _spawn(part: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """Run one half in a fresh Python process of this script, with a data dir and a Ray temp
    dir of its own; its output goes to a log, shown if it fails. Returns its JSON result."""
    data = folder / part[0]  # short: Ray's socket paths (under RAY_TMPDIR) are limited
    data.mkdir()
    result, log = data / "result.json", data / "log.txt"
    environment = dict(os.environ, RAY_TMPDIR=str(data))
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "OPTISTUDY_OPTUNA_STORAGE"):
        environment.pop(name, None)
    command = [sys.executable, str(Path(__file__).resolve()), "--part", part,
               "--data", str(data), "--result", str(result), "--trials", str(args.trials),
               "--seeds", str(args.seeds), "--baseline-runs", str(args.baseline_runs)]
    with log.open("wb") as output:
        # a session of its own: on a timeout the child and every Ray process it started go
        child = subprocess.Popen(command, env=environment, stdout=output,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = child.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            code = None
    if code != 0 or not result.exists():
        tail = log.read_text(errors="replace").splitlines()[-40:]
        why = f"ran past {args.timeout} s" if code is None else f"exited with {code}"
        sys.exit("\n".join([f"the {part} half {why}; the end of its output ({log}):", *tail,
                            f"its Ray logs: {data / 'ray' / 'session_latest' / 'logs'}"]))
    measured: dict[str, float] = json.loads(result.read_text())
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--baseline-runs", type=int, default=40,
                        help="runs of the hand-wired pipeline (0: skip it)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds each half may take before it is stopped")
    parser.add_argument("--part", choices=("product", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part is not None:  # a child: one half, its result as JSON
        measured = run_part(args.part, args.trials, args.seeds, args.baseline_runs, args.data)
        args.result.write_text(json.dumps(measured))
        return
    folder = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    product = _spawn("product", args, folder)
    hand = _spawn("baseline", args, folder) if args.baseline_runs > 0 else None
    shutil.rmtree(folder, ignore_errors=True)  # kept, with the logs, where a half failed
    _report(args.trials, args.seeds, product, hand, args.baseline_runs)


if __name__ == "__main__":
    main()
