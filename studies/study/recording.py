"""MLflow records every trial, from the driver (one writer): an experiment per study, a
parent run per (task, arm), a child run per trial tagged with its Optuna trial number and
Ray trial id. A trial run again (retried, or resumed by a new driver) continues its own run;
runs a dead driver left RUNNING end KILLED."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from studies.study.home import Home
from studies.study.search import TRIAL_NUMBER

HISTORY_FILE = "history.npz"
RESULT_FILE = "result.json"
CURVE_POINTS = 200
"""Per-epoch curves are downsampled to at most this many points, so the UI stays fast."""
_PARAM_LIMIT = 6000  # MLflow's limit on a parameter value's length


def tracking_uri(home: Home) -> str:
    """``MLFLOW_TRACKING_URI``, or an SQLite store in the data dir."""
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{home.root / 'mlflow.db'}")


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    else:
        into[prefix] = json.dumps(value) if isinstance(value, list) else str(value)


def mlflow_key(name: str) -> str:
    """A name MLflow accepts as a param or metric key: ``betas[0]`` becomes ``betas.0``
    (MLflow allows only alphanumerics, ``_ - . : /`` and spaces)."""
    return re.sub(r"[^\w\-.:/ ]", "_", re.sub(r"\[(\d+)\]", r".\1", name))


def params_of(config: dict[str, Any]) -> list[Param]:
    """A trial's full configuration as MLflow params (``optimizer.lr``, ``stop.max_epochs``)."""
    flat: dict[str, str] = {}
    _flatten("", config, flat)
    return [Param(mlflow_key(key), text[:_PARAM_LIMIT]) for key, text in sorted(flat.items())]


def curves(history_epochs: np.ndarray, history_loss: np.ndarray, epochs: list[int],
           converged: list[bool], step_time: int) -> list[Metric]:
    """Per-epoch loss median and 10/90% quantiles over seeds, and the fraction converged,
    downsampled to at most ``CURVE_POINTS`` epochs."""
    if history_loss.size == 0:
        return []
    chosen = np.unique(np.linspace(0, len(history_epochs) - 1,
                                   min(CURVE_POINTS, len(history_epochs))).round().astype(int))
    reached = np.array([e if c else np.inf for e, c in zip(epochs, converged, strict=True)])
    metrics = []
    for row in chosen:
        epoch = int(history_epochs[row])
        losses = history_loss[row][np.isfinite(history_loss[row])]
        values = {"frac_converged": float((reached <= epoch).mean())}
        if losses.size:
            values.update(loss_median=float(np.median(losses)),
                          loss_p10=float(np.quantile(losses, 0.1)),
                          loss_p90=float(np.quantile(losses, 0.9)))
        metrics += [Metric(key, value, step_time, epoch) for key, value in values.items()]
    return metrics


def _metrics(values: dict[str, Any], prefix: str = "") -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(mlflow_key(prefix + key), float(value), now, 0)
            for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)]


class MlflowRecorder(tune.Callback):
    """Records one (task, arm) of a study; a Ray Tune callback in the driver."""

    def __init__(self, home: Home, study: str, task: str, arm: str, optimizer: str,
                 configs: dict[int, dict[str, Any]] | None = None):
        self.client = MlflowClient(tracking_uri(home))
        self.study, self.task, self.arm, self.optimizer = study, task, arm, optimizer
        name = f"optistudy/{study}"
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (experiment.experiment_id if experiment is not None else
                              self.client.create_experiment(
                                  name, artifact_location=(home.root / "mlartifacts").as_uri()))
        self.parent_id = self._parent()
        self.runs: dict[int, str] = {}

    def _find(self, extra: str) -> list[Any]:
        base = (f"tags.`optistudy.study` = '{self.study}' and tags.`optistudy.task` = "
                f"'{self.task}' and tags.`optistudy.arm` = '{self.arm}'")
        return list(self.client.search_runs([self.experiment_id], f"{base} and {extra}"))

    def _tags(self) -> dict[str, str]:
        return {"optistudy.study": self.study, "optistudy.task": self.task,
                "optistudy.arm": self.arm, "optistudy.optimizer": self.optimizer}

    def _parent(self) -> str:
        found = self._find("tags.`optistudy.role` = 'arm'")
        if found:
            run_id: str = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=f"{self.task}/{self.arm}",
                                     tags={**self._tags(), "optistudy.role": "arm"})
        return str(run.info.run_id)

    def _trial_run(self, number: int, ray_trial_id: str) -> str:
        """The trial's own run: continued if it exists (a retried or resumed trial)."""
        found = self._find(f"tags.`optistudy.role` = 'trial' and "
                           f"tags.`optuna.trial_number` = '{number}'")
        if found:
            run_id: str = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "ray.trial_id", ray_trial_id)
            return run_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.task}/{self.arm}/trial-{number}",
            tags={**self._tags(), "optistudy.role": "trial", "mlflow.parentRunId":
                  self.parent_id, "optuna.trial_number": str(number),
                  "ray.trial_id": ray_trial_id})
        return str(run.info.run_id)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        number = int(trial.config[TRIAL_NUMBER])
        run_id = self._trial_run(number, str(trial.trial_id))
        self.runs[number] = run_id
        hyperparameters = {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER}
        self.client.log_batch(run_id, params=params_of({"hyperparameters": hyperparameters}))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        number = int(trial.config[TRIAL_NUMBER])
        run_id = self.runs.get(number) or self._trial_run(number, str(trial.trial_id))
        result = trial.last_result or {}
        summary = {k[len("summary/"):]: v for k, v in result.items() if k.startswith("summary/")}
        summary = summary or dict(result.get("summary") or {})
        now = int(time.time() * 1000)
        metrics = _metrics(summary)
        folder = self._checkpoint_folder(trial)
        params: list[Param] = []
        if folder is not None and (folder / RESULT_FILE).exists():
            record = json.loads((folder / RESULT_FILE).read_text())
            params = params_of({"config": record["config"]})
            if (folder / HISTORY_FILE).exists():
                with np.load(folder / HISTORY_FILE) as history:
                    metrics += curves(history["epochs"], history["loss"],
                                      [m["epochs"] for m in record["members"]],
                                      [m["status"] == "converged" for m in record["members"]],
                                      now)
                self.client.log_artifact(run_id, str(folder / HISTORY_FILE))
            self.client.log_artifact(run_id, str(folder / RESULT_FILE))
        for start in range(0, len(metrics), 1000):  # MLflow takes up to 1000 per batch
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000],
                                  params=params if start == 0 else ())
        status = "FINISHED" if summary else "KILLED"  # no summary: stopped early (ASHA)
        self.client.set_terminated(run_id, status)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        number = int(trial.config[TRIAL_NUMBER])
        run_id = self.runs.get(number) or self._trial_run(number, str(trial.trial_id))
        self.client.set_tag(run_id, "optistudy.error", str(trial.error_file or "")[:5000])
        self.client.set_terminated(run_id, "FAILED")

    @staticmethod
    def _checkpoint_folder(trial: Any) -> Path | None:
        checkpoint = getattr(trial, "checkpoint", None)
        path = getattr(checkpoint, "path", None)
        return Path(path) if path and Path(path).is_dir() else None

    def close(self, trials: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
        """End the arm, reconciled with the Optuna ledger (``trials``): a trial the ledger
        has finished whose run a dead driver left unfinished (or never opened) gets its
        metrics from the ledger and the ledger's ending; the parent run gets the best
        trial's metrics and ends FINISHED."""
        runs = {int(r.data.tags["optuna.trial_number"]): r
                for r in self._find("tags.`optistudy.role` = 'trial'")}
        endings = {"COMPLETE": "FINISHED", "FAIL": "FAILED", "PRUNED": "KILLED"}
        for trial in trials:
            run = runs.get(trial["number"])
            if run is not None and run.info.status != "RUNNING":
                continue
            run_id = (run.info.run_id if run is not None
                      else self._trial_run(trial["number"], "unknown"))
            self.client.log_batch(run_id, metrics=_metrics(trial["metrics"]))
            self.client.set_terminated(run_id, endings.get(trial["state"], "KILLED"))
        if best is not None:
            self.client.log_batch(self.parent_id, metrics=_metrics(best["metrics"], "best_"),
                                  tags=[RunTag("optistudy.best_trial", str(best["number"]))])
        self.client.set_terminated(self.parent_id, "FINISHED")
