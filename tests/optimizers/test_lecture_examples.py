"""The lecture's and the book's worked examples, reproduced through the optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from optimizers import PerceptronRule, SteepestDescent

F64 = torch.float64


def test_steepest_descent_on_the_lecture_quadratic() -> None:
    """F(x) = x₁² + 2x₁x₂ + 2x₂² + x₁ from x₀ = (0.5, 0.5), α = 0.1 (lecture).

    ∇F = (2x₁ + 2x₂ + 1, 2x₁ + 4x₂): x₁ = x₀ − 0.1·(3, 3) = (0.2, 0.2) and
    x₂ = x₁ − 0.1·(1.8, 1.2) = (0.02, 0.08).
    """
    x = torch.tensor([0.5, 0.5], dtype=F64, requires_grad=True)
    optimizer = SteepestDescent([x], lr=0.1)

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = x[0] ** 2 + 2 * x[0] * x[1] + 2 * x[1] ** 2 + x[0]
        value.backward()
        return value

    optimizer.step(closure)
    assert x.tolist() == pytest.approx([0.2, 0.2], abs=1e-15)
    optimizer.step(closure)
    assert x.tolist() == pytest.approx([0.02, 0.08], abs=1e-15)


def test_delta_rule_first_xor_iteration() -> None:
    """Negnevitsky's XOR 2-2-1 example, first pattern (1, 1) → 0, α = 0.1.

    The delta rule is steepest descent on ½e² (ALGORITHMS.md): one SteepestDescent(lr=0.1)
    step on plain torch.nn.Linear layers, thresholds as biases −θ, must give the book's
    outputs, output gradient δ5 = −∂E/∂X5 and updated weights, to its 4 decimals.
    """
    hidden, output = nn.Linear(2, 2, dtype=F64), nn.Linear(2, 1, dtype=F64)
    with torch.no_grad():
        # [[w13, w23], [w14, w24]]
        hidden.weight.copy_(torch.tensor([[0.5, 0.4], [0.9, 1.0]], dtype=F64))
        hidden.bias.copy_(torch.tensor([-0.8, 0.1], dtype=F64))  # [−θ3, −θ4]
        output.weight.copy_(torch.tensor([[-1.2, 1.1]], dtype=F64))  # [[w35, w45]]
        output.bias.copy_(torch.tensor([-0.3], dtype=F64))  # [−θ5]
    optimizer = SteepestDescent([*hidden.parameters(), *output.parameters()], lr=0.1)

    y34 = torch.sigmoid(hidden(torch.tensor([[1.0, 1.0]], dtype=F64)))
    x5 = output(y34)
    x5.retain_grad()
    y5 = torch.sigmoid(x5)
    e = 0.0 - y5
    (0.5 * e**2).sum().backward()
    optimizer.step()

    assert x5.grad is not None
    observed = {
        "y3": y34[0, 0], "y4": y34[0, 1], "y5": y5[0, 0], "δ5": -x5.grad[0, 0],
        "w13": hidden.weight[0, 0], "w23": hidden.weight[0, 1], "θ3": -hidden.bias[0],
        "w14": hidden.weight[1, 0], "w24": hidden.weight[1, 1], "θ4": -hidden.bias[1],
        "w35": output.weight[0, 0], "w45": output.weight[0, 1], "θ5": -output.bias[0],
    }  # fmt: skip
    book = {
        "y3": 0.5250, "y4": 0.8808, "y5": 0.5097, "δ5": -0.1274,
        "w13": 0.5038, "w23": 0.4038, "θ3": 0.7962,
        "w14": 0.8985, "w24": 0.9985, "θ4": -0.0985,
        "w35": -1.2067, "w45": 1.0888, "θ5": 0.3127,
    }  # fmt: skip
    assert {name: round(value.item(), 4) for name, value in observed.items()} == book


AND_PATTERNS = [((0, 0), 0), ((0, 1), 0), ((1, 0), 0), ((1, 1), 1)]

AND_TABLE = [
    # epoch, x1, x2, Y_d, Y, e, w1 and w2 after the pattern (Negnevitsky, Table 6.3)
    (1, 0, 0, 0, 0, 0, 0.3, -0.1),
    (1, 0, 1, 0, 0, 0, 0.3, -0.1),
    (1, 1, 0, 0, 1, -1, 0.2, -0.1),
    (1, 1, 1, 1, 0, 1, 0.3, 0.0),
    (2, 0, 0, 0, 0, 0, 0.3, 0.0),
    (2, 0, 1, 0, 0, 0, 0.3, 0.0),
    (2, 1, 0, 0, 1, -1, 0.2, 0.0),
    (2, 1, 1, 1, 1, 0, 0.2, 0.0),
    (3, 0, 0, 0, 0, 0, 0.2, 0.0),
    (3, 0, 1, 0, 0, 0, 0.2, 0.0),
    (3, 1, 0, 0, 1, -1, 0.1, 0.0),
    (3, 1, 1, 1, 0, 1, 0.2, 0.1),
    (4, 0, 0, 0, 0, 0, 0.2, 0.1),
    (4, 0, 1, 0, 0, 0, 0.2, 0.1),
    (4, 1, 0, 0, 1, -1, 0.1, 0.1),
    (4, 1, 1, 1, 1, 0, 0.1, 0.1),
    (5, 0, 0, 0, 0, 0, 0.1, 0.1),
    (5, 0, 1, 0, 0, 0, 0.1, 0.1),
    (5, 1, 0, 0, 0, 0, 0.1, 0.1),
    (5, 1, 1, 1, 1, 0, 0.1, 0.1),
]


def train_and_perceptron(
    w1: float, w2: float, theta: float, alpha: float
) -> list[tuple[int, int, int, int, int, int, float, float]]:
    """Rosenblatt's rule on AND through PerceptronRule, one pattern per step, θ held fixed.

    The perceptron is a torch.nn.Linear(2, 1) with bias −θ (not trained) and a hard limiter
    step(X) = 1 if X ≥ 0 else 0 whose derivative is taken as 1 (straight-through), so that
    ½e² back-propagates g = −x·e. Runs epochs until one has no error; returns the table rows.
    """
    perceptron = nn.Linear(2, 1, dtype=F64)
    with torch.no_grad():
        perceptron.weight.copy_(torch.tensor([[w1, w2]], dtype=F64))
        perceptron.bias.fill_(-theta)
    perceptron.bias.requires_grad_(False)
    optimizer = PerceptronRule([perceptron.weight], lr=alpha)
    rows = []
    for epoch in range(1, 11):
        errors = 0
        for (x1, x2), desired in AND_PATTERNS:
            big_x = perceptron(torch.tensor([[x1, x2]], dtype=F64))
            y = big_x + ((big_x >= 0).to(F64) - big_x).detach()
            e = desired - y
            optimizer.zero_grad()
            (0.5 * e**2).sum().backward()
            optimizer.step()
            errors += int(e.item() != 0)
            w = perceptron.weight[0].tolist()
            rows.append((epoch, x1, x2, desired, int(y.item()), int(e.item()), w[0], w[1]))
        if errors == 0:
            break
    return rows


def test_perceptron_rule_reproduces_the_and_table_in_exact_arithmetic() -> None:
    """Negnevitsky's Table 6.3, scaled to tenths: w1 = 3, w2 = −1, θ = 2, α = 1.

    The book's trajectory hits X = Σxᵢwᵢ − θ = 0 exactly five times (epoch 2 (1,1), epoch 3
    (1,0), epoch 4 (1,0) and (1,1), epoch 5 (1,1)), where step(0) = 1 decides the outcome.
    In decimal float64 these sums are not 0 (see the next test), so the exact trajectory is
    checked on the same problem in tenths: every weight, θ and α·x·e is then a small
    integer, float64 computes it exactly, and since step(X) depends only on the sign of X
    and e ∈ {−1, 0, 1}, the run in tenths is the book's run scaled by 10. It converges after
    5 epochs with w = (0.1, 0.1).
    """
    rows = train_and_perceptron(3.0, -1.0, 2.0, alpha=1.0)
    in_tenths = [(*row[:6], row[6] / 10, row[7] / 10) for row in rows]
    assert in_tenths == AND_TABLE


def test_perceptron_rule_and_table_in_decimal_float64_departs_from_the_book() -> None:
    """Finding: with w1 = 0.3, w2 = −0.1, θ = 0.2, α = 0.1 in float64 the book is not reproduced.

    In epoch 1, w1 = 0.3 − 0.1 = 0.19999999999999998 (neither 0.3 nor 0.1 is exact in
    binary), so in epoch 2 pattern (1, 1) gives X = 0.19999999999999998 + 0 − 0.2 < 0 instead
    of the book's X = 0: Y = 0 and e = 1 where the book has Y = 1 and e = 0. The run then
    stops after 4 epochs at w ≈ (0.2, 0.1), which classifies AND only because (1, 0) again
    gives X ≈ −2.8e−17 < 0 instead of 0. The step function is not bent to hide this; the
    exact trajectory is checked in tenths above.
    """
    rows = train_and_perceptron(0.3, -0.1, 0.2, alpha=0.1)
    for row, book in zip(rows[:7], AND_TABLE[:7], strict=True):
        assert row[:6] == book[:6]
        assert row[6:] == pytest.approx(book[6:], abs=1e-15)
    assert rows[2][6] == 0.19999999999999998
    assert rows[7][:6] == (2, 1, 1, 1, 0, 1)
    assert AND_TABLE[7][:6] == (2, 1, 1, 1, 1, 0)
    assert len(rows) == 16
    assert rows[-1][6:] == (0.19999999999999998, 0.1)
