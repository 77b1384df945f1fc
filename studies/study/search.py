"""A Ray Tune searcher whose only state is the Optuna storage, so that a study survives its
driver being killed at any moment.

Ray's ``OptunaSearch`` keeps the map from Ray trials to Optuna trials in the driver and
saves it now and then; a driver killed between two saves leaves Optuna trials RUNNING for
ever, and on restore Ray re-runs trials Optuna has already closed. Here every Ray trial
carries the number of its Optuna trial in its config, and a new driver first re-runs, under
their own numbers, the trials the dead one left RUNNING (orphans), then asks for new ones
until the budget is met: exactly ``budget`` trials, distinct numbers, none left RUNNING.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from ray.tune.search import Searcher

log = logging.getLogger(__name__)

TRIAL_NUMBER = "optuna_trial_number"
"""The config key that carries a Ray trial's Optuna trial number to the trainable."""

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """The trial's own metrics, reported under ``summary`` (Ray flattens it to
    ``summary/NAME`` before a searcher sees it)."""
    nested = result.get("summary")
    if isinstance(nested, dict):
        return dict(nested)
    prefix = "summary/"
    return {key[len(prefix):]: value for key, value in result.items() if key.startswith(prefix)}


class LedgerSearch(Searcher):
    """Suggest configurations from ``study`` (persistent storage) up to ``budget`` trials.

    ``metrics`` / ``modes`` name the reported values and their directions (one each for a
    single objective, two for a multi-objective study)."""

    def __init__(self, study: optuna.Study, space: dict[str, BaseDistribution], budget: int,
                 metrics: list[str], modes: list[str]):
        super().__init__(metric=metrics[0], mode=modes[0])
        self.study, self.space, self.metrics = study, space, metrics
        trials = study.get_trials(deepcopy=False)
        self.orphans = [t for t in trials if t.state == TrialState.RUNNING]
        finished = sum(t.state in _FINISHED for t in trials)
        self.to_ask = max(0, budget - finished - len(self.orphans))
        self.numbers: dict[str, int] = {}

    @property
    def remaining(self) -> int:
        """Trials this driver will run: the orphans it resumes and the new ones it asks."""
        return len(self.orphans) + self.to_ask - len(self.numbers)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
        if trial_id in self.numbers:
            return None
        if self.orphans:
            trial = self.orphans.pop(0)
            log.info("resuming Optuna trial %d left RUNNING by a dead driver", trial.number)
            number, params = trial.number, dict(trial.params)
        elif self.to_ask > 0:
            self.to_ask -= 1
            asked = self.study.ask(fixed_distributions=self.space)
            number, params = asked.number, dict(asked.params)
        else:
            return Searcher.FINISHED  # type: ignore[return-value]
        self.numbers[trial_id] = number
        return {**params, TRIAL_NUMBER: number}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        number = self.numbers.get(trial_id)
        if number is None:
            return
        values = [None if result is None else result.get(m) for m in self.metrics]
        frozen = self.study._storage.get_trial(
            self.study._storage.get_trial_id_from_study_id_trial_number(
                self.study._study_id, number))
        if frozen.state != TrialState.RUNNING:
            return  # told already (a duplicate completion): never count a trial twice
        summary = _summary(result or {})
        if summary:
            self.study._storage.set_trial_user_attr(frozen._trial_id, "metrics", summary)
        if not error and not summary:
            self.study.tell(number, state=TrialState.PRUNED)  # stopped early by the scheduler
        elif error or any(not isinstance(v, int | float) for v in values):
            self.study.tell(number, state=TrialState.FAIL)
        else:
            told = [float(v) for v in values if isinstance(v, int | float)]
            self.study.tell(number, told[0] if len(told) == 1 else told)
