"""Look optimizers up by name: the names a study spec uses for its arms."""

from __future__ import annotations

from torch.optim import Optimizer

from optimizers.adam import Adam
from optimizers.grprop import GRprop
from optimizers.perceptron_rule import PerceptronRule
from optimizers.rmsprop import RMSProp
from optimizers.rprop import Rprop
from optimizers.steepest_descent import SteepestDescent

_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "adam": Adam,
    "grprop": GRprop,
    "perceptron_rule": PerceptronRule,
    "rmsprop": RMSProp,
    "rprop": Rprop,
    "steepest_descent": SteepestDescent,
}

_ALIASES: dict[str, str] = {"sgd": "steepest_descent"}


def names() -> list[str]:
    """The canonical optimizer names, sorted (aliases such as ``"sgd"`` are not listed)."""
    return sorted(_OPTIMIZERS)


def get(name: str) -> type[Optimizer]:
    """The optimizer class called ``name`` (a canonical name or an alias)."""
    optimizer = _OPTIMIZERS.get(_ALIASES.get(name, name))
    if optimizer is None:
        raise ValueError(f"Unknown optimizer {name!r} (allowed: {', '.join(names())})")
    return optimizer
