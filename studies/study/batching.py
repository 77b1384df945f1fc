"""Batched trials: one Ray Tune trial trains several Optuna trials at once, as one population
of configurations × seeds.

Ray Tune costs a fraction of a second per trial (scheduling, an actor call, results, a
checkpoint) and a trial of XOR over 100 seeds trains in milliseconds, so a study of many
small trials spends its time in Ray, not in training. When the configurations of an arm
differ only in numeric optimizer hyperparameters, the engine trains them together, each
member with its own hyperparameters (``per_member``), and reports each configuration on its
own: members are independent, so every Optuna trial gets exactly the outcome it would get
alone, and Optuna sees every configuration as its own trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

import optimizers
from studies.engine import TrainConfig
from studies.engine.build import with_per_member
from studies.study.arm import Arm
from studies.study.search_space import Choice

WAVES = 4
"""Auto batches: each worker slot runs about this many Ray trials, so that Optuna learns from
finished batches before it proposes the later ones."""
MAX_POPULATION = 50_000
"""Auto batches: at most this many members (configurations × seeds) in one population."""


def searched_numbers_only(arm: Arm) -> bool:
    """Whether every searched value of ``arm`` is a number its optimizer takes per member."""
    for param in arm.search.values():
        if isinstance(param, Choice) and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in param.choices):
            return False
    if not arm.search:
        return False
    try:  # construct the optimizer with every searched value given per member
        values = arm.fixed_and(arm.lowest())
        weights = torch.zeros(2, 3, requires_grad=True)
        per_member = _split_tuples({name: values[name.partition("[")[0]]
                                    for name in arm.search})
        kwargs = with_per_member(arm.optimizer, values,
                                 {name: torch.full((2,), float(value))
                                  for name, value in per_member.items()})
        optimizer_class: Any = optimizers.get(arm.optimizer)
        optimizer_class([weights], members=2, **kwargs)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def batch_size(setting: int | str, arm: Arm, trials: int, seeds: int, slots: int) -> int:
    """Optuna trials per Ray trial: the spec's ``batch_trials`` (an int, or ``auto``: enough
    Ray trials for ``WAVES`` rounds on every slot, populations of at most ``MAX_POPULATION``
    members), 1 where the arm's configurations cannot share a population."""
    if not searched_numbers_only(arm):
        return 1
    if setting != "auto":
        return max(1, int(setting))
    wanted = math.ceil(trials / max(1, slots * WAVES))
    return max(1, min(wanted, MAX_POPULATION // max(1, seeds)))


def population(configs: Sequence[TrainConfig]) -> tuple[TrainConfig, list[int],
                                                         dict[str, Tensor]]:
    """The one population that trains ``configs`` (equal but for optimizer hyperparameter
    values): its config, its seeds (each config's seeds, config after config) and the
    per-member hyperparameters where the configs differ."""
    base = configs[0]
    seeds = base.seed_list
    rest = base.model_dump(exclude={"optimizer"})
    for config in configs[1:]:
        if (config.model_dump(exclude={"optimizer"}) != rest
                or config.optimizer.name != base.optimizer.name):
            raise ValueError("a batch of trials must differ only in optimizer hyperparameters")
    columns = [_split_tuples(dict(c.optimizer.hyperparameters)) for c in configs]
    per_member: dict[str, Tensor] = {}
    for name in columns[0]:
        values = [column[name] for column in columns]
        if all(value == values[0] for value in values):
            continue
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ValueError(f"hyperparameter {name!r} differs within a batch but is not a "
                             f"number: {values[:3]}")
        per_member[name] = torch.tensor(values, dtype=torch.float64).repeat_interleave(
            len(seeds))
    return base, seeds * len(configs), per_member


def _split_tuples(values: dict[str, Any]) -> dict[str, Any]:
    """Tuple hyperparameters (``betas``) as one entry per element (``betas[0]``)."""
    split: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, tuple | list):
            split.update({f"{name}[{i}]": element for i, element in enumerate(value)})
        else:
            split[name] = value
    return split
