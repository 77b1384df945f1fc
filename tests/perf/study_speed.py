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

and prints runs per second for both, their ratio, where the product's time goes, and the
driver's peak RSS. Usage:
``.venv/bin/python tests/perf/study_speed.py [--trials 100 --seeds 100 --baseline-runs 40]``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import resource
import secrets
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
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


def _timed(owner: type, method: str, bucket: str) -> None:
    """Wrap ``owner.method`` so that the time spent in it adds up in ``SPENT[bucket]``."""
    original: Callable[..., Any] = getattr(owner, method)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[bucket] += time.perf_counter() - start

    setattr(owner, method, wrapper)


def _instrument() -> None:
    """Time the product's driver-side parts without changing what they do."""
    from ray import tune

    from studies.study.mlflow_writes import Writer
    from studies.study.recording import MlflowRecorder
    from studies.study.search import LedgerSearch

    for method in ("on_trial_start", "on_trial_complete", "on_trial_error"):
        _timed(MlflowRecorder, method, "mlflow_in_fit")  # Ray calls these inside Tuner.fit
    for method in ("_open", "_complete_batch", "_fail"):
        _timed(MlflowRecorder, method, "mlflow_writes")  # on the recorder's writer thread
    _timed(Writer, "stop", "mlflow_drain")  # close() waiting for the writer
    for method in ("__init__", "close"):
        _timed(MlflowRecorder, method, "mlflow_per_arm")
    _timed(MlflowRecorder, "_best_trial_plots", "plots")  # inside close: the "report" part
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
    """A data dir, a local Ray and a Ray token of this run's own (as tests/studies do; one
    token for both pipelines: Ray keeps the first one it read for the whole process)."""
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
    from studies.study import StudySpec, runner
    from studies.study.home import Home

    imported = time.perf_counter()
    _instrument()
    spec = StudySpec.model_validate(_spec(trials, seeds))
    study_home = Home(home)
    runner.start(spec, study_home)
    runner.connect(None)
    ray_started = time.perf_counter()
    outcomes = runner.execute(spec, study_home, progress=lambda line: None)
    wall = time.perf_counter() - start
    finished = [t for o in outcomes for t in o.trials if t["state"] == "COMPLETE"]
    assert len(finished) == trials, f"{len(finished)} of {trials} trials completed"
    timers = {bucket: SPENT[bucket] for bucket in
              ("tuner_fit", "optuna", "mlflow_in_fit", "mlflow_per_arm", "plots",
               "mlflow_writes", "mlflow_drain")}
    return {**timers, "wall": wall, "imports": imported - start,
            "ray_start": ray_started - imported, "driver_cpu": _cpu_seconds() - cpu_start,
            "execute": time.perf_counter() - ray_started,
            # a batch's trials each report the population's training time: count it once
            "engine": sum(float(t["metrics"]["wall_time_s"]) / float(t["metrics"]["batch_size"])
                          for t in finished),
            "batches": len({t["metrics"]["wall_time_s"] for t in finished}),
            "model_epochs": sum(float(t["metrics"]["model_epochs"]) for t in finished),
            "success": sum(float(t["metrics"]["success_rate"]) for t in finished) / trials}


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
    """The hand-wired pipeline on ``runs`` runs (a fresh Ray, started inside the timing)."""
    import mlflow
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    ray.shutdown()
    _environment(home)
    start = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
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


def _report(trials: int, seeds: int, product: dict[str, float], peak_rss_mib: float,
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
    _report_product(trials, product, peak_rss_mib)


def _report_hand_wired(rate: float, hand: dict[str, float], runs: int) -> None:
    hand_rate, hand_fit_rate = runs / hand["wall"], runs / hand["fit"]
    print(f"hand-wired  : {runs} runs in {hand['wall']:.1f} s = {hand_rate:.3f} runs/s "
          f"(Ray start {hand['ray_start']:.1f} s; without it {hand_fit_rate:.3f} runs/s), "
          f"success rate {hand['success']:.1%}")
    print(f"ratio       : {rate / hand_rate:,.0f}x  (against the hand-wired rate without its "
          f"Ray start: {rate / hand_fit_rate:,.0f}x; floor 1,000x)")


def _report_product(trials: int, product: dict[str, float], peak_rss_mib: float) -> None:
    wall = product["wall"]
    slots = max(1, int(os.cpu_count() or 1))
    in_trials = sum(TRIAL_TIMES)
    fit = product["tuner_fit"]
    # every second MLflow took, in the event loop, on the writer's thread (overlapping the
    # trials) or at the end of the arm, without counting the end's wait for the writer twice
    mlflow = (product["mlflow_in_fit"] + product["mlflow_writes"] + product["mlflow_per_arm"]
              - product["mlflow_drain"])
    other_driver = product["execute"] - fit - product["mlflow_per_arm"]

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"  {label:<34}{seconds:8.2f} s {100 * seconds / wall:5.1f}%  {note}")

    print("where the product's time goes (driver wall time; % of the product's wall):")
    line("imports (studies, ray, optuna...)", product["imports"])
    line("Ray start (ray.init)", product["ray_start"])
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
         "(background thread, overlaps the trials)")
    line("MLflow per arm (recorder)", product["mlflow_per_arm"],
         f"(parent run, close; {product['mlflow_drain']:.2f} s of it waiting for the writer)")
    line("  of which best-trial plots", product["plots"], "(the 'report' part of study run)")
    line("other driver work", other_driver, "(ledger, Optuna study, status files)")
    print(f"  MLflow in all: {mlflow:.2f} s = {100 * mlflow / wall:.1f}% of the wall (goal <= 10%)")
    print(f"  {trials} Optuna trials in {len(TRIAL_TIMES)} Ray trials (batched: one population "
          "of configurations x seeds each)")
    ray_trials = max(1, len(TRIAL_TIMES))
    print(f"  Ray trials: {len(TRIAL_TIMES)}, mean {in_trials / ray_trials:.3f} s "
          f"each (Ray time_total_s), engine {product['engine'] / ray_trials:.3f} s each, "
          f"{product['model_epochs'] / max(product['engine'], 1e-9):,.0f} model-epochs/s")
    print(f"  trials ran in {len(TRIAL_PIDS)} worker processes (Ray actors; reuse_actors=True); "
          f"driver CPU {product['driver_cpu']:.1f} s (it shares the cores with the trials)")
    print(f"peak RSS of the driver after the product's study: {peak_rss_mib:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--baseline-runs", type=int, default=40,
                        help="runs of the hand-wired pipeline (0: skip it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="study-speed-") as folder:
        _environment(Path(folder) / "product")
        product = run_product(args.trials, args.seeds, Path(folder) / "product")
        peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        hand = (run_hand_wired(args.baseline_runs, Path(folder) / "hand-wired")
                if args.baseline_runs > 0 else None)
    _report(args.trials, args.seeds, product, peak_rss_mib, hand, args.baseline_runs)


if __name__ == "__main__":
    main()
