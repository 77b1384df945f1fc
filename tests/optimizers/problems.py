"""Small deterministic float64 problems that the optimizer tests train on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)

NEGNEVITSKY_XOR = [0.5, 0.4, 0.9, 1.0, -0.8, 0.1, -1.2, 1.1, -0.3]
"""The book's 2-2-1 XOR start, flattened as torch.nn.Linear layers: hidden weight
[[w13, w23], [w14, w24]], hidden bias [−θ3, −θ4], output weight [[w35, w45]], bias [−θ5]."""

QUADRATIC_A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
QUADRATIC_B = torch.tensor([1.0, -1.0], dtype=torch.float64)
QUADRATIC_START = [1.5, -1.0]


def mlp_weights(seed: int) -> list[Tensor]:
    """A 2-3-1 network [hidden weight, hidden bias, output weight, output bias], U(−1, 1)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(3, 2), (3,), (1, 3), (1,)]
    return [torch.rand(s, generator=generator, dtype=torch.float64) * 2 - 1 for s in shapes]


def population_weights(seed: int, members: int) -> list[Tensor]:
    """``members`` networks stacked on a leading member dimension; member i is seed + i."""
    alone = [mlp_weights(seed + i) for i in range(members)]
    return [torch.stack(tensors) for tensors in zip(*alone, strict=True)]


def xor_sse(weights: Sequence[Tensor]) -> Tensor:
    """Σ e² of one sigmoid network (2-3-1 or 2-2-1) over the four XOR patterns (batch)."""
    w1, b1, w2, b2 = weights
    hidden = torch.sigmoid(XOR_INPUTS @ w1.T + b1)
    output = torch.sigmoid(hidden @ w2.T + b2)
    return ((XOR_TARGETS - output) ** 2).sum()


def xor_member_sse(weights: Sequence[Tensor]) -> Tensor:
    """Each member's ``xor_sse`` [K], computed network by network as a lone run would."""
    members = weights[0].shape[0]
    return torch.stack([xor_sse([w[i] for w in weights]) for i in range(members)])


def xor_flat_sse(flat: Tensor) -> Tensor:
    """``xor_sse`` of the 2-2-1 network whose nine weights are laid out as NEGNEVITSKY_XOR."""
    return xor_sse([flat[0:4].view(2, 2), flat[4:6], flat[6:8].view(1, 2), flat[8:9]])


def quadratic(w: Tensor) -> Tensor:
    """The convex quadratic ½ wᵀAw − bᵀw (A positive definite) of the last dimension."""
    return 0.5 * ((w @ QUADRATIC_A) * w).sum(-1) - w @ QUADRATIC_B


def plain(loss: Callable[[Tensor], Tensor]) -> Callable[[list[float]], tuple[float, list[float]]]:
    """``loss`` as the plain-Python f(w) -> (loss, gradient) that reference loops take."""

    def f(w: list[float]) -> tuple[float, list[float]]:
        x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        value = loss(x)
        value.backward()
        assert x.grad is not None
        return value.item(), x.grad.tolist()

    return f


def train(
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    loss: Callable[[Sequence[Tensor]], Tensor],
    steps: int,
    *,
    per_member_loss: bool = False,
) -> list[list[Tensor]]:
    """Take ``steps`` batch steps; return a copy of the weights after each.

    The closure back-propagates the sum of ``loss`` (the members' losses when there are
    several) and returns it, or returns the per-member losses with ``per_member_loss``.
    """

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = loss(params)
        value.sum().backward()
        return value if per_member_loss else value.sum()

    trajectory = []
    for _ in range(steps):
        optimizer.step(closure)  # type: ignore[arg-type]  # torch types closures as float
        trajectory.append([p.detach().clone() for p in params])
    return trajectory
