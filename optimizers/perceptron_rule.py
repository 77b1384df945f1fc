"""Rosenblatt's perceptron rule w ← w + α·x·e, as a gradient step on ½Σe²."""

from __future__ import annotations

from torch.optim.optimizer import ParamsT

from optimizers._population import Hyperparameter
from optimizers.steepest_descent import SteepestDescent


class PerceptronRule(SteepestDescent):
    r"""Rosenblatt's perceptron training rule (lecture "Perceptron's training algorithm").

    .. math::
        Y = \mathrm{step}\Big(\sum_i x_i w_i - \theta\Big), \qquad
        \mathrm{step}(X) = \begin{cases} 1 & X \ge 0 \\ 0 & X < 0 \end{cases}, \qquad
        e = Y_d - Y, \qquad w_i \leftarrow w_i + \alpha\, x_i\, e

    one pattern at a time. The threshold is either held fixed (leave it out of ``params``)
    or trained as a weight on a constant −1 input, θ ← θ − α·e; a ``torch.nn.Linear`` bias
    b = −θ trained here gets b ← b + α·e, which is the same thing.

    As an optimizer the rule is a gradient step: with the loss E = ½Σe² and the hard
    limiter's derivative taken as 1 (straight-through, ∂Y/∂X = 1), the gradient is
    g_i = ∂E/∂w_i = −x_i·e, so the rule is

    .. math::
        w \leftarrow w - \alpha\, g

    i.e. ``SteepestDescent(lr=α, momentum=0)``, equal bit for bit to ``torch.optim.SGD(lr=α)``
    in float64. The model must supply that straight-through gradient (for example
    Y = X + (step(X) − X).detach()) and the caller presents one pattern per step.

    Source: Rosenblatt (1958); Negnevitsky, *Artificial Intelligence: A Guide to Intelligent
    Systems*, ch. 6 (the worked AND example); ALGORITHMS.md.

    Args:
        params: parameters or param groups.
        lr: learning rate α > 0.
        members: K for a population of K perceptrons (every parameter has a leading member
            dimension of size K); ``lr`` may then be a tensor of shape [K].
    """

    def __init__(
        self, params: ParamsT, lr: Hyperparameter = 0.1, *, members: int | None = None
    ) -> None:
        super().__init__(params, lr, momentum=0.0, members=members)
