"""Training algorithms as ``torch.optim.Optimizer`` subclasses, one per module.

Each works on an ordinary model and on a population of K networks (``members=K``, see
``optimizers._population``). ``get(name)`` looks one up by the name a study spec uses.
"""

from optimizers._registry import get, names
from optimizers.adam import Adam
from optimizers.grprop import GRprop
from optimizers.perceptron_rule import PerceptronRule
from optimizers.rmsprop import RMSProp
from optimizers.rprop import Rprop
from optimizers.steepest_descent import SteepestDescent

__all__ = [
    "Adam",
    "GRprop",
    "PerceptronRule",
    "RMSProp",
    "Rprop",
    "SteepestDescent",
    "get",
    "names",
]
