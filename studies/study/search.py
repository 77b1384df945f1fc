"""A Ray Tune searcher whose only state is the Optuna storage, so that a study survives its
driver being killed at any moment.

Ray's ``OptunaSearch`` keeps the map from Ray trials to Optuna trials in the driver and
saves it now and then; a driver killed between two saves leaves Optuna trials RUNNING for
ever, and on restore Ray re-runs trials Optuna has already closed. Here every Ray trial
carries the number of its Optuna trial in its config, and a new driver first re-runs, under
their own numbers, the trials the dead one left RUNNING (orphans), then asks for new ones
until the budget is met: exactly ``budget`` trials, distinct numbers, none left RUNNING.

A Ray trial may carry a batch of Optuna trials (``studies.study.batching``): its config
holds their numbers and parameters, it reports each one's metrics under ``trials/NUMBER``,
and each Optuna trial is told its own values.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

log = logging.getLogger(__name__)

TRIAL_BATCH = "optuna_trials"
"""The config key that carries a Ray trial's Optuna trials to the trainable: a list of
``[number, params]``."""
REPORTED = "trials"
"""The result key under which a Ray trial reports each Optuna trial's metrics by number."""

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
"""The states of a trial that counts in the budget."""


def work_left(study: optuna.Study, budget: int) -> tuple[list[FrozenTrial], int]:
    """What a driver has to run for ``budget`` trials: the trials a dead driver left RUNNING
    (orphans, re-run under their own numbers) and how many new ones to ask for."""
    trials = study.get_trials(deepcopy=False)
    orphans = [t for t in trials if t.state == TrialState.RUNNING]
    finished = sum(t.state in FINISHED for t in trials)
    return orphans, max(0, budget - finished - len(orphans))


def batch_of(config: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The Optuna trials (number, params) a Ray trial's config carries."""
    return [(int(number), dict(params)) for number, params in config[TRIAL_BATCH]]


def reported(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each Optuna trial's metrics from a Ray trial's final result, by number: reported
    under ``trials`` (nested, or flattened by Ray to ``trials/NUMBER/NAME``)."""
    nested = result.get(REPORTED)
    if isinstance(nested, dict):
        return {int(number): dict(metrics) for number, metrics in nested.items()}
    found: dict[int, dict[str, Any]] = {}
    prefix = REPORTED + "/"
    for key, value in result.items():
        if key.startswith(prefix):
            number, _, name = key[len(prefix):].partition("/")
            found.setdefault(int(number), {})[name] = value
    return found


class LedgerSearch(Searcher):
    """Suggest configurations from ``study`` (persistent storage) up to ``budget`` trials.

    ``metrics`` / ``modes`` name the reported values and their directions (one each for a
    single objective, two for a multi-objective study)."""

    def __init__(self, study: optuna.Study, space: dict[str, BaseDistribution], budget: int,
                 metrics: list[str], modes: list[str], batch: int = 1):
        super().__init__(metric=metrics[0], mode=modes[0])
        self.study, self.space, self.metrics, self.batch = study, space, metrics, batch
        self.orphans, self.to_ask = work_left(study, budget)
        self.numbers: dict[str, list[int]] = {}
        self.ray_trials = -(-len(self.orphans) // batch) + -(-self.to_ask // batch)
        """Ray trials this driver will run: the orphans in batches, then the new ones."""

    @property
    def remaining(self) -> int:
        """Optuna trials this driver will run: the orphans it resumes and the new ones."""
        return len(self.orphans) + self.to_ask

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
        if trial_id in self.numbers:
            return None
        batch: list[tuple[int, dict[str, Any]]] = []
        if self.orphans:
            for trial in self.orphans[: self.batch]:
                log.info("resuming Optuna trial %d left RUNNING by a dead driver", trial.number)
                batch.append((trial.number, self._orphan_params(trial)))
            del self.orphans[: self.batch]
        else:
            for _ in range(min(self.batch, self.to_ask)):
                asked = self.study.ask(fixed_distributions=self.space)
                batch.append((asked.number, dict(asked.params)))
            self.to_ask -= len(batch)
        if not batch:
            return Searcher.FINISHED  # type: ignore[return-value]
        self.numbers[trial_id] = [number for number, _ in batch]
        return {TRIAL_BATCH: [[number, params] for number, params in batch]}

    def _orphan_params(self, trial: FrozenTrial) -> dict[str, Any]:
        """An orphan's parameters. ``ask`` stores a new trial, then its parameters one by one:
        a driver killed in between left some unset, and those are suggested now as ``ask``
        would have (an enqueued trial's fixed values, else the sampler's)."""
        if set(self.space) <= set(trial.params):
            return dict(trial.params)
        log.info("Optuna trial %d was left without some parameters: suggesting them",
                 trial.number)
        live = optuna.Trial(self.study, trial._trial_id)
        return {name: live._suggest(name, distribution)
                for name, distribution in self.space.items()}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        by_number = reported(result or {})
        for number in self.numbers.get(trial_id, []):
            self._tell(number, by_number.get(number, {}), error)

    def _tell(self, number: int, summary: dict[str, Any], error: bool) -> None:
        values = [summary.get(m) for m in self.metrics]
        frozen = self.study._storage.get_trial(
            self.study._storage.get_trial_id_from_study_id_trial_number(
                self.study._study_id, number))
        if frozen.state != TrialState.RUNNING:
            return  # told already (a duplicate completion): never count a trial twice
        if summary:
            self.study._storage.set_trial_user_attr(frozen._trial_id, "metrics", summary)
        if not error and not summary:
            self.study.tell(number, state=TrialState.PRUNED)  # stopped early by the scheduler
        elif error or any(not isinstance(v, int | float) for v in values):
            self.study.tell(number, state=TrialState.FAIL)
        else:
            told = [float(v) for v in values if isinstance(v, int | float)]
            self.study.tell(number, told[0] if len(told) == 1 else told)
