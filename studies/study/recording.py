"""MLflow records every trial, from the driver (one writer): an experiment per study, a
parent run per (task, arm), a child run per trial tagged with its Optuna trial number and
Ray trial id. A trial run again (retried, or resumed by a new driver) continues its own run;
runs a dead driver left RUNNING end KILLED."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from studies.study import mlflow_writes
from studies.study.home import Home
from studies.study.mlflow_sql import Ending, NewRun
from studies.study.mlflow_values import (
    CURVE_KEY,
    Curves,
    curves,
    metrics_of,
    params_of,
    unlogged,
)
from studies.study.search import batch_of, reported
from studies.study.trial_files import (
    HISTORY_FILE,
    RESULT_FILE,
    SEEDS_FILE,
    TELEMETRY_PREFIX,
    WEIGHTS_FILE,
)

ARTIFACTS = (RESULT_FILE, SEEDS_FILE, HISTORY_FILE, WEIGHTS_FILE)
PLOTS = Literal["best", "all", "none"]


def tracking_uri(home: Home) -> str:
    """``MLFLOW_TRACKING_URI``, or an SQLite store in the data dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home.root / 'mlflow.db'}"


def tracking_client(home: Home) -> MlflowClient:
    """A client of the tracking store, the data dir's SQLite store created if missing."""
    uri = tracking_uri(home)
    store = home.root / "mlflow.db"
    if uri == f"sqlite:///{store}" and not store.exists():
        _create_store(store)
    return MlflowClient(uri)


@contextlib.contextmanager
def store_created_alongside(home: Home) -> Iterator[None]:
    """Create the data dir's MLflow store, if missing (about a second of schema migrations),
    on a thread while the body runs (Ray's start-up, which mostly waits for its processes);
    its error, if any, is raised after the body."""
    failures: list[BaseException] = []

    def create() -> None:
        try:
            tracking_client(home)
        except BaseException as error:  # raised in the caller's thread
            failures.append(error)

    creating = threading.Thread(target=create, name="mlflow-store", daemon=True)
    creating.start()
    try:
        yield
    finally:
        creating.join()
    if failures:
        raise failures[0]


def _create_store(store: Path) -> None:
    """Create the SQLite store whole or not at all: MLflow builds its schema in many steps,
    and a process killed (or a second one starting) halfway would leave a store no one can
    open. The schema is built in a file of this process's own, then linked into place,
    which fails harmlessly if another process got there first."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.parent, prefix=".mlflow-") as folder:
        building = Path(folder) / "mlflow.db"
        MlflowClient(f"sqlite:///{building}").search_experiments(max_results=1)
        with contextlib.suppress(FileExistsError):
            os.link(building, store)


class MlflowRecorder(tune.Callback):
    """Records one (task, arm) of a study; a Ray Tune callback in the driver."""

    def __init__(self, home: Home, study: str, task: str, arm: str, optimizer: str, *,
                 plots: PLOTS = "best", arm_spec: dict[str, Any] | None = None,
                 results: Path | None = None):
        # downloads (the best trial's files, for its plots) would draw progress bars
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.client = tracking_client(home)
        self.plots = plots
        self.results = results
        """The arm's Ray Tune results (every driver's experiments): where a trial whose
        recording a dead driver cut short left its files."""
        self.study, self.task, self.arm, self.optimizer = study, task, arm, optimizer
        name = f"optistudy/{study}"
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (experiment.experiment_id if experiment is not None else
                              self.client.create_experiment(
                                  name, artifact_location=(home.root / "mlartifacts").as_uri()))
        self.parent_id = self._parent(arm_spec or {})
        self.runs: dict[int, str] = {
            int(run.data.tags["optuna.trial_number"]): run.info.run_id
            for run in self._find("tags.`optistudy.role` = 'trial'")}
        """The trial runs by Optuna trial number: those of earlier drivers, found once, and
        those opened here."""
        self.artifact_uris: dict[str, str] = {}
        """Where the artifacts of the runs opened here go, by run id."""
        self._writer: mlflow_writes.Writer | None = None  # started by the first write

    def _find(self, extra: str) -> list[Any]:
        base = (f"tags.`optistudy.study` = '{self.study}' and tags.`optistudy.task` = "
                f"'{self.task}' and tags.`optistudy.arm` = '{self.arm}'")
        found: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], f"{base} and {extra}",
                                           max_results=1000, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _tags(self) -> dict[str, str]:
        return {"optistudy.study": self.study, "optistudy.task": self.task,
                "optistudy.arm": self.arm, "optistudy.optimizer": self.optimizer}

    def _parent(self, arm_spec: dict[str, Any]) -> str:
        """The arm's run (continued if it exists), with the arm's spec as params (its
        optimizer, fixed values, search space), so the compare view lines arms up."""
        found = self._find("tags.`optistudy.role` = 'arm'")
        if found:
            run_id: str = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            missing = unlogged(params_of({"arm": arm_spec}), found[0].data.params)
            if missing:  # a driver killed between creating the run and logging them
                self.client.log_batch(run_id, params=missing)
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=f"{self.task}/{self.arm}",
                                     tags={**self._tags(), "optistudy.role": "arm"})
        self.client.log_batch(run.info.run_id, params=params_of({"arm": arm_spec}))
        return str(run.info.run_id)

    def _new_run(self, number: int, ray_trial_id: str, params: list[Param]) -> NewRun:
        return NewRun(f"{self.task}/{self.arm}/trial-{number}", {
            **self._tags(), "optistudy.role": "trial", "mlflow.parentRunId": self.parent_id,
            "optuna.trial_number": str(number), "ray.trial_id": ray_trial_id}, params)

    def _trial_run(self, number: int, ray_trial_id: str) -> tuple[str, bool]:
        """The trial's own run, and whether it is new: continued if it exists (a retried
        or resumed trial)."""
        run_id = self.runs.get(number)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "ray.trial_id", ray_trial_id)
            return run_id, False
        [(run_id, artifact_uri)] = mlflow_writes.create_runs(
            self.client, self.experiment_id, [self._new_run(number, ray_trial_id, [])])
        self.runs[number] = run_id
        self.artifact_uris[run_id] = artifact_uri
        return run_id, True

    @property
    def writer(self) -> mlflow_writes.Writer:
        """The writer thread, started on first use (Ray Tune pickles its callbacks when the
        Tuner is made, and a thread cannot be pickled)."""
        if self._writer is None:
            self._writer = mlflow_writes.Writer()
        return self._writer

    # Ray Tune calls these in its event loop; the writes happen on the writer's thread.
    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.writer.submit(self._open, batch_of(trial.config), str(trial.trial_id))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        self.writer.submit(self._complete_batch, batch_of(trial.config), str(trial.trial_id),
                           reported(trial.last_result or {}), self._checkpoint_folder(trial))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        self.writer.submit(self._fail, batch_of(trial.config), str(trial.trial_id),
                           str(trial.error_file or "")[:5000])

    def _open(self, batch: list[tuple[int, dict[str, Any]]], ray_trial_id: str) -> None:
        """Open the batch's trial runs (new ones together), with their hyperparameters."""
        new: dict[int, NewRun] = {}
        for number, hyperparameters in batch:
            params = params_of({"hyperparameters": hyperparameters})
            if number not in self.runs:
                new[number] = self._new_run(number, ray_trial_id, params)
                continue
            run_id, _ = self._trial_run(number, ray_trial_id)
            # a driver killed between opening the run and logging them
            params = unlogged(params, self.client.get_run(run_id).data.params)
            if params:
                self.client.log_batch(run_id, params=params)
        opened = mlflow_writes.create_runs(self.client, self.experiment_id, list(new.values()))
        self.runs.update(zip(new, (run.run_id for run in opened), strict=True))
        self.artifact_uris.update(opened)

    def _complete_batch(self, batch: list[tuple[int, dict[str, Any]]], ray_trial_id: str,
                        by_number: dict[int, dict[str, Any]], folder: Path | None) -> None:
        """End the batch's trial runs together, each with its summary and files."""
        mlflow_writes.end_runs(self.client, [
            self._ending(number, ray_trial_id, by_number.get(number, {}),
                         None if folder is None else folder / str(number))
            for number, _ in batch])

    def _ending(self, number: int, ray_trial_id: str, summary: dict[str, Any],
                folder: Path | None, *, left: Any = None) -> Ending:
        """A finished trial's ending from its summary and its files in ``folder`` (logged as
        its artifacts here). ``left``: the run as a dead driver left it (RUNNING; its curves
        may be logged already)."""
        run_id = self.runs.get(number) or self._trial_run(number, ray_trial_id)[0]
        params: list[Param] = []
        trial_curves = None
        if folder is not None and (folder / RESULT_FILE).exists():
            record = json.loads((folder / RESULT_FILE).read_text())
            params = params_of({"config": record["config"]})
            curves_logged = left is not None and CURVE_KEY in left.data.metrics
            if (folder / HISTORY_FILE).exists() and not curves_logged:
                trial_curves = _curves(folder / HISTORY_FILE, record["members"])
            mlflow_writes.log_files(self.client, run_id, folder,
                                    artifact_uri=self.artifact_uris.get(run_id))
            if self.plots == "all":
                self._log_plots(run_id, folder)
        # no summary: stopped early (ASHA)
        return Ending(run_id, "FINISHED" if summary else "KILLED", params, metrics_of(summary),
                      curves=trial_curves)

    def _fail(self, batch: list[tuple[int, dict[str, Any]]], ray_trial_id: str,
              error: str) -> None:
        mlflow_writes.end_runs(self.client, [
            Ending(self.runs.get(number) or self._trial_run(number, ray_trial_id)[0], "FAILED",
                   tags=[RunTag("optistudy.error", error)]) for number, _ in batch])

    @staticmethod
    def _checkpoint_folder(trial: Any) -> Path | None:
        checkpoint = getattr(trial, "checkpoint", None)
        path = getattr(checkpoint, "path", None)
        return Path(path) if path and Path(path).is_dir() else None

    def close(self, trials: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
        """End the arm, reconciled with the Optuna ledger (``trials``): a trial the ledger
        has finished whose run a dead driver left unfinished (or never opened) gets its
        metrics from the ledger and the ledger's ending, and its curves and files where its
        final report is still on disk; the parent run gets the best trial's metrics and ends
        FINISHED."""
        if self._writer is not None:  # first, every write Ray Tune's callbacks asked for
            self._writer.stop()
            self._writer = None
        # only the runs left RUNNING are read back: a study's trial runs are many
        running = {int(r.data.tags["optuna.trial_number"]): r for r in self._find(
            "tags.`optistudy.role` = 'trial' and attributes.status = 'RUNNING'")}
        mlflow_writes.end_runs(self.client, [
            self._reconciled(trial, running.get(trial["number"])) for trial in trials
            if trial["number"] in running or trial["number"] not in self.runs])
        parent = Ending(self.parent_id, "FINISHED")
        if best is not None:
            best_run_id = self.runs.get(best["number"])
            if best_run_id is not None and self.plots != "none":
                self._best_trial_plots(best_run_id)
            parent = Ending(self.parent_id, "FINISHED",
                            metrics=metrics_of(best["metrics"], "best_"),
                            tags=[RunTag("optistudy.best_trial", str(best["number"]))])
        mlflow_writes.end_runs(self.client, [parent])

    def _reconciled(self, trial: dict[str, Any], run: Any) -> Ending:
        """The ending of a trial the ledger has ended whose run a dead driver left RUNNING
        (``run``) or never opened (``None``)."""
        hyperparameters = params_of({"hyperparameters": trial["params"]})
        folder = (self._files_of(trial["number"])
                  if run is not None and trial["state"] == "COMPLETE" else None)
        if run is not None and folder is not None:
            # its files are on disk: record it as its driver would have
            self.runs[trial["number"]] = run.info.run_id
            ending = self._ending(trial["number"], "unknown", trial["metrics"], folder, left=run)
            return replace(ending, params=[*hyperparameters, *ending.params])
        run_id = (run.info.run_id if run is not None
                  else self._trial_run(trial["number"], "unknown")[0])
        endings = {"COMPLETE": "FINISHED", "FAIL": "FAILED", "PRUNED": "KILLED"}
        return Ending(run_id, endings.get(trial["state"], "KILLED"), hyperparameters,
                      metrics_of(trial["metrics"]))

    def _files_of(self, number: int) -> Path | None:
        """The files of trial ``number`` from its final report, if any driver's Ray Tune
        experiment kept them (the newest)."""
        if self.results is None:
            return None
        found = sorted(self.results.glob(f"*/*/checkpoint_*/{number}/{RESULT_FILE}"),
                       key=lambda path: path.stat().st_mtime)
        return found[-1].parent if found else None

    def _log_plots(self, run_id: str, folder: Path) -> Path | None:
        """Draw the trial's plots from its files in ``folder``; log them under ``plots/``."""
        from studies.study import plots  # matplotlib: imported when drawing, not at start-up

        into = folder / "plots"
        if not plots.render(folder, into):
            return None
        mlflow_writes.log_files(self.client, run_id, into, "plots",
                                artifact_uri=self.artifact_uris.get(run_id))
        return into

    def _best_trial_plots(self, run_id: str) -> None:
        """The best trial's plots, on its run (unless drawn already) and on the arm's run
        (``best_trial/``, with its per-seed table), so arms can be compared side by side."""
        logged = {artifact.path for artifact in self.client.list_artifacts(run_id)}
        parent = {artifact.path for artifact in self.client.list_artifacts(self.parent_id)}
        if RESULT_FILE not in logged or "best_trial" in parent:
            return
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            for name in ARTIFACTS:
                if name in logged:
                    self.client.download_artifacts(run_id, name, str(folder))
            if "plots" in logged:
                self.client.download_artifacts(run_id, "plots", str(folder))
                drawn: Path | None = folder / "plots"
            else:
                drawn = self._log_plots(run_id, folder)
            if drawn is not None:
                self.client.log_artifacts(self.parent_id, str(drawn), "best_trial")
            if SEEDS_FILE in logged:
                self.client.log_artifact(self.parent_id, str(folder / SEEDS_FILE), "best_trial")


def _curves(history_file: Path, members: list[dict[str, Any]]) -> Curves:
    with np.load(history_file) as history:  # not the trajectories
        saved = {name: history[name] for name in history.files
                 if name in ("epochs", "loss") or name.startswith(TELEMETRY_PREFIX)}
    telemetry = {name.removeprefix(TELEMETRY_PREFIX): values for name, values in saved.items()
                 if name.startswith(TELEMETRY_PREFIX)}
    return curves(saved, [m["epochs"] for m in members],
                  [m["status"] == "converged" for m in members], telemetry)
