"""MLflow records every benchmark run: an experiment ``optistudy-bench/SUITE``, a parent run
per bench run (tag ``optistudy.role = benchmark``), a child run per entry (``optistudy.role =
benchmark-entry``) with its configuration as params, its summary as metrics and its per-seed
results as artifacts; a check adds each entry's verdict and test results (``check.*``
metrics, tag ``optistudy.verdict``) and the run's."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag

from studies.bench.check import CheckReport, EntryCheck
from studies.bench.results import BenchRun, EntryResult
from studies.study.home import Home
from studies.study.mlflow_values import metrics_of, params_of
from studies.study.recording import tracking_client

SEEDS_FILE = "seeds.csv"
ENTRY_FILE = "entry.json"
RUN_FILE = "run.json"
CHECK_FILE = "check.json"
_SEED_COLUMNS = ("seed", "status", "epochs", "final_loss", "time_to_target_s")


def experiment_name(suite: str) -> str:
    return f"optistudy-bench/{suite}"


class BenchRecorder:
    """Records one bench run from the driver (the only writer)."""

    def __init__(self, home: Home, suite: str, run_id: str, suite_digest: str):
        self.client = tracking_client(home)
        name = experiment_name(suite)
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (experiment.experiment_id if experiment is not None else
                              self.client.create_experiment(
                                  name, artifact_location=(home.root / "mlartifacts").as_uri()))
        self.tags = {"optistudy.suite": suite, "optistudy.bench_run": run_id}
        parent = self.client.create_run(
            self.experiment_id, run_name=run_id,
            tags={**self.tags, "optistudy.role": "benchmark",
                  "optistudy.suite_digest": suite_digest})
        self.parent_id: str = parent.info.run_id
        self.entry_runs: dict[str, str] = {}

    def entry(self, result: EntryResult) -> None:
        """One finished entry: a child run with its config, summary and per-seed results."""
        run = self.client.create_run(self.experiment_id, run_name=result.entry, tags={
            **self.tags, "optistudy.role": "benchmark-entry", "optistudy.entry": result.entry,
            "optistudy.task": result.entry.split("/")[0],
            "optistudy.optimizer": str(result.config["optimizer"]["name"]),
            "mlflow.parentRunId": self.parent_id})
        run_id: str = run.info.run_id
        self.entry_runs[result.entry] = run_id
        self.client.log_batch(run_id, metrics=metrics_of(result.summary),
                              params=params_of({"config": result.config}))
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            _write_seeds(result.members(), folder / SEEDS_FILE)
            (folder / ENTRY_FILE).write_text(json.dumps(
                {"entry": result.entry, "config": result.config, "summary": result.summary,
                 "environment": result.environment, "members": result.members()}))
            self.client.log_artifacts(run_id, temporary)
        self.client.set_terminated(run_id, "FINISHED")

    def finish(self, run: BenchRun, report: CheckReport | None) -> None:
        """The run's environment and results on the parent run, then the check's verdicts
        (if any); the parent ends FINISHED."""
        params = params_of({"environment": run.environment})
        self.client.log_batch(self.parent_id, params=params, metrics=metrics_of(
            {"entries": len(run.entries), "wall_time_s": run.wall_time_s}))
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            (folder / RUN_FILE).write_text(json.dumps(run.to_json()))
            if report is not None:
                (folder / CHECK_FILE).write_text(json.dumps(report.to_json()))
            self.client.log_artifacts(self.parent_id, temporary)
        if report is not None:
            self._verdicts(report)
        self.client.set_terminated(self.parent_id, "FINISHED")

    def fail(self) -> None:
        """The run did not finish: the parent ends FAILED (entries already recorded stay)."""
        self.client.set_terminated(self.parent_id, "FAILED")

    def _verdicts(self, report: CheckReport) -> None:
        for entry in report.entries:
            run_id = self.entry_runs[entry.entry]
            self.client.log_batch(run_id, metrics=_check_metrics(entry), tags=[
                RunTag("optistudy.verdict", entry.verdict),
                RunTag("optistudy.baseline", report.baseline_run)])
        counts = {verdict: sum(e.verdict == verdict for e in report.entries)
                  for verdict in ("regressed", "improved", "unchanged", "not comparable")}
        self.client.log_batch(
            self.parent_id,
            metrics=metrics_of({f"check.{verdict.replace(' ', '_')}_entries": count
                                for verdict, count in counts.items()}),
            tags=[RunTag("optistudy.verdict", report.verdict),
                  RunTag("optistudy.baseline", report.baseline_run)])


def _check_metrics(entry: EntryCheck) -> list[Metric]:
    values: dict[str, Any] = {
        "check.regressed": int(entry.verdict == "regressed"),
        "check.differing_seeds": entry.differing_seeds,
        "check.success_p": entry.success_p,
        "check.baseline_success_rate": entry.successes[0] / entry.seeds,
        "check.success_rate": entry.successes[1] / entry.seeds,
        "check.epochs_p": entry.epochs_p,
    }
    if entry.epochs_ratio is not None:
        values.update({"check.epochs_ratio": entry.epochs_ratio.estimate,
                       "check.epochs_ratio_low": entry.epochs_ratio.low,
                       "check.epochs_ratio_high": entry.epochs_ratio.high})
    return metrics_of(values)


def _write_seeds(members: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, _SEED_COLUMNS)
        writer.writeheader()
        writer.writerows(members)
