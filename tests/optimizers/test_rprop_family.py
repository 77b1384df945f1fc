"""Rprop and GRprop tests that the generic optimizer database does not cover.

Sign changes that really happen (both iRprop+ branches), iRprop− against torch.optim.Rprop,
GRprop's choice of the recomputed weight and its write-back, the Wolfe line search per
member, and the population contract (member i of K == the same network alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from optimizers.grprop import GRprop
from optimizers.rprop import Rprop
from tests.optimizers.reference_rprop import grprop_reference, rprop_reference

F64 = torch.float64
XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=F64)
XOR_Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=F64)
SHAPES = [(3, 2), (3,), (1, 3), (1,)]
"""A 2-3-1 sigmoid MLP as torch.nn.Linear stores it: W1, b1, W2, b2."""

RPROP_VARIANTS = ["Rprop+", "Rprop-", "iRprop+", "iRprop-"]
GRPROP_VARIANTS = ["sag", "slr"]


def init_mlp(members: int | None, seed: int) -> list[Tensor]:
    """Uniform(−1, 1) weights; member k of a population gets the weights of seed + k alone."""
    seeds = [seed] if members is None else [seed + k for k in range(members)]
    per_seed = []
    for s in seeds:
        generator = torch.Generator().manual_seed(s)
        per_seed.append(
            [torch.rand(shape, generator=generator, dtype=F64) * 2 - 1 for shape in SHAPES]
        )
    if members is None:
        return [p.requires_grad_() for p in per_seed[0]]
    return [torch.stack(ps).requires_grad_() for ps in zip(*per_seed, strict=True)]


def mlp_sse(w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """The lecture's E = Σ e² of one network on XOR."""
    hidden = torch.sigmoid(XOR_X @ w1.T + b1)
    output = torch.sigmoid(hidden @ w2.T + b2)
    return ((XOR_Y - output) ** 2).sum()


def mlp_losses(params: list[Tensor], members: int | None) -> Tensor:
    """Each member's E with the same ops as alone (shape [K], or [] for one network)."""
    if members is None:
        return mlp_sse(*params)
    return torch.stack([mlp_sse(*(p[k] for p in params)) for k in range(members)])


def closure_for(
    optimizer: torch.optim.Optimizer,
    losses: Callable[[], Tensor],
) -> Callable[[], Tensor]:
    """Zero the gradients, return the per-member losses, back-propagate their sum."""

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = losses()
        value.sum().backward()
        return value

    return closure


def flat(tensors: list[Tensor]) -> list[float]:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).tolist()


def mlp_objective(params: list[Tensor]) -> Callable[[list[float]], tuple[float, list[float]]]:
    """The reference loops' f: flat weights (param order, row-major) -> (E, ∂E/∂w)."""

    def f(weights: list[float]) -> tuple[float, list[float]]:
        pieces = torch.tensor(weights, dtype=F64).split([p.numel() for p in params])
        tensors = [
            piece.reshape(p.shape).requires_grad_() for piece, p in zip(pieces, params, strict=True)
        ]
        loss = mlp_sse(*tensors)
        grads = torch.autograd.grad(loss, tensors)
        return loss.item(), flat(list(grads))

    return f


# --- Rprop variants and GRprop against their reference loops, with sign changes ----------------


@pytest.mark.parametrize(
    ("optimizer", "variant"),
    [(Rprop, v) for v in RPROP_VARIANTS] + [(GRprop, v) for v in GRPROP_VARIANTS],
)
def test_matches_reference_loop_through_sign_changes(optimizer: Any, variant: str) -> None:
    steps = 60
    kwargs = {"variant": variant, "delta0": 0.1}
    params = init_mlp(None, seed=3)
    reference = rprop_reference if optimizer is Rprop else grprop_reference
    expected = reference(kwargs)(flat(params), mlp_objective(params), steps)

    opt = optimizer(params, **kwargs)
    closure = closure_for(opt, lambda: mlp_losses(params, None))
    sign_changes, reverted, kept = 0, 0, 0
    for t in range(steps):
        loss = closure()
        changed = any(
            bool((p.grad * opt.state[p]["prev"] < 0).any()) for p in params if opt.state[p]
        )
        if changed:
            sign_changes += 1
            if variant == "iRprop+":
                worse = bool(loss > opt.state[params[0]]["prev_loss"])
                reverted, kept = reverted + worse, kept + (not worse)
        opt.step(lambda loss=loss: loss)
        got = flat(params)
        assert max(abs(a - b) for a, b in zip(got, expected[t], strict=True)) <= 1e-12, t

    assert sign_changes >= 5
    if variant == "iRprop+":
        assert reverted > 0 and kept > 0, (reverted, kept)


def test_rprop_plus_reverts_the_previous_step_on_a_sign_change() -> None:
    """One weight, E = (w − 0.25)²: from 0, steps +0.1, +0.12, +0.144 pass 0.25; undo."""
    w = torch.zeros(1, dtype=F64, requires_grad=True)
    opt = Rprop([w], variant="Rprop+", delta0=0.1)
    closure = closure_for(opt, lambda: ((w - 0.25) ** 2).sum())
    trajectory = []
    for _ in range(5):
        opt.step(closure)
        trajectory.append(w.item())
    assert trajectory[:3] == pytest.approx([0.1, 0.22, 0.364], abs=1e-15)
    # g > 0 at 0.364 while g_old < 0: Δ ← 0.144·0.5 = 0.072, undo the +0.144 step, g_old = 0
    assert trajectory[3] == pytest.approx(0.22, abs=1e-15)
    # g_old = 0: a plain step with the reduced Δ (0.072) toward 0.25
    assert trajectory[4] == pytest.approx(0.292, abs=1e-15)


def test_irprop_plus_needs_the_loss_of_each_member() -> None:
    params = init_mlp(4, seed=0)
    opt = Rprop(params, variant="iRprop+", members=4)
    mlp_losses(params, 4).sum().backward()
    with pytest.raises(ValueError, match=r"needs a closure that returns the loss"):
        opt.step()
    scalar = closure_for(opt, lambda: mlp_losses(params, 4).sum())
    with pytest.raises(ValueError, match=r"loss of each network: shape \(4,\), got \(\)"):
        opt.step(scalar)


# --- iRprop− is torch.optim.Rprop ----------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        {},
        {"delta0": 0.0125, "delta_min": 1e-3, "delta_max": 0.5, "eta_minus": 0.3, "eta_plus": 1.5},
    ],
)
def test_irprop_minus_equals_torch_rprop_bit_for_bit(schedule: dict[str, float]) -> None:
    def make() -> torch.nn.Module:
        torch.manual_seed(7)
        return torch.nn.Sequential(
            torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1), torch.nn.Sigmoid()
        ).to(F64)

    ours_net, torch_net = make(), make()
    values = {
        "delta0": 0.1,
        "delta_min": 1e-6,
        "delta_max": 50.0,
        "eta_minus": 0.5,
        "eta_plus": 1.2,
    }
    values.update(schedule)
    ours = Rprop(ours_net.parameters(), variant="iRprop-", **values)
    reference = torch.optim.Rprop(
        torch_net.parameters(),
        lr=values["delta0"],
        etas=(values["eta_minus"], values["eta_plus"]),
        step_sizes=(values["delta_min"], values["delta_max"]),
    )
    clipped = 0
    for _ in range(80):
        for net, opt in ((ours_net, ours), (torch_net, reference)):
            opt.step(closure_for(opt, lambda net=net: ((XOR_Y - net(XOR_X)) ** 2).sum()))
        for p, q in zip(ours_net.parameters(), torch_net.parameters(), strict=True):
            assert torch.equal(p, q)
            assert torch.equal(ours.state[p]["step_size"], reference.state[q]["step_size"])
            assert torch.equal(ours.state[p]["prev"], reference.state[q]["prev"])
            sizes = ours.state[p]["step_size"]
            clipped += int(((sizes == values["delta_min"]) | (sizes == values["delta_max"])).sum())
    if schedule:
        assert clipped > 0  # the bounds were reached, so the clamp was exercised


# --- GRprop: which rate is recomputed, and where it goes ----------------------------------------


def grprop_with_gradients(
    gradients: list[list[Tensor]], **kwargs: Any
) -> tuple[GRprop, list[Tensor], list[list[float]]]:
    """Step GRprop with prescribed gradients; return it, the params and the step sizes per step."""
    params = [torch.zeros_like(g, requires_grad=True) for g in gradients[0]]
    opt = GRprop(params, **kwargs)
    sizes = []
    for step_grads in gradients:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
        sizes.append(flat([opt.state[p]["step_size"] for p in params]))
    return opt, params, sizes


def test_grprop_sag_and_slr_recompute_different_weights() -> None:
    g = [torch.tensor([-3.0, 0.5, 2.0], dtype=F64)]
    delta = 1e-6
    # sag: m = 1 (|0.5| is the smallest |g|)
    _, params, sizes = grprop_with_gradients([g], variant="sag", delta0=0.1, delta=delta)
    eta_1 = -(0.1 * -3.0 + 0.1 * 2.0 + delta) / 0.5
    assert sizes[0] == pytest.approx([0.1, eta_1, 0.1], rel=1e-15)
    assert flat(params) == pytest.approx([0.1, -eta_1, -0.1], rel=1e-15)
    # slr: all rates are 0.1, the first one wins: m = 0
    _, params, sizes = grprop_with_gradients([g], variant="slr", delta0=0.1, delta=delta)
    eta_0 = -(0.1 * 0.5 + 0.1 * 2.0 + delta) / -3.0
    assert sizes[0] == pytest.approx([eta_0, 0.1, 0.1], rel=1e-15)
    assert flat(params) == pytest.approx([eta_0, -0.1, -0.1], rel=1e-15)
    assert eta_0 != pytest.approx(0.1) and eta_1 != pytest.approx(0.1)


def test_grprop_slr_tie_goes_to_the_first_nonzero_weight_row_major() -> None:
    """Flat order: the group's params in order, each row-major; zero gradients are skipped."""
    g = [torch.tensor([[0.0, -4.0], [3.0, -1.0]], dtype=F64), torch.tensor([2.0], dtype=F64)]
    _, _, sizes = grprop_with_gradients([g], variant="slr", delta0=0.1)
    # row-major, the first nonzero gradient is [0, 1] = −4 (column-major would give [1, 0] = 3)
    eta = -(0.1 * 3.0 + 0.1 * -1.0 + 0.1 * 2.0 + 1e-6) / -4.0
    assert sizes[0] == pytest.approx([0.1, eta, 0.1, 0.1, 0.1], rel=1e-15)


def test_grprop_recomputed_rate_is_clipped_to_its_bounds() -> None:
    # step 1, m = 1: η_1 = −(0.1·3 + δ)/2 < 0 → Δmin
    # step 2, m = 0: η_0 = −(1e-6·−2 + δ)/1e-9 = 1000 → Δmax (η_1 stays at Δmin = max(½Δmin, Δmin))
    g1 = [torch.tensor([3.0, 2.0], dtype=F64)]
    g2 = [torch.tensor([1e-9, -2.0], dtype=F64)]
    _, _, sizes = grprop_with_gradients([g1, g2], variant="sag", delta_min=1e-6, delta_max=5.0)
    assert sizes[0] == [0.1, 1e-6]
    assert sizes[1] == [5.0, 1e-6]


def test_grprop_recomputed_rate_is_written_back_and_adapted_next_step() -> None:
    delta = 1e-6
    g1 = [torch.tensor([-3.0, 0.5, 2.0], dtype=F64)]
    g2 = [torch.tensor([2.0, 0.4, -0.1], dtype=F64)]
    _, params, sizes = grprop_with_gradients([g1, g2], variant="sag", delta0=0.1, delta=delta)
    eta_1 = -(0.1 * -3.0 + 0.1 * 2.0 + delta) / 0.5  # step 1: m = 1
    assert sizes[0][1] == pytest.approx(eta_1, rel=1e-15)
    # step 2: g_0 and g_2 change sign (×0.5), g_1 keeps it (×1.2, from the recomputed η_1);
    # then m = 2 (|−0.1|) is recomputed from the others
    eta_0, eta_1 = 0.1 * 0.5, eta_1 * 1.2
    eta_2 = -(eta_0 * 2.0 + eta_1 * 0.4 + delta) / -0.1
    assert sizes[1] == pytest.approx([eta_0, eta_1, eta_2], rel=1e-14)
    w1 = [0.1, -0.199998, -0.1]
    assert flat(params) == pytest.approx([w1[0] - eta_0, w1[1] - eta_1, w1[2] + eta_2], rel=1e-14)


def test_grprop_member_with_zero_gradient_takes_no_step() -> None:
    params = [torch.zeros(2, 3, dtype=F64, requires_grad=True)]
    opt = GRprop(params, variant="slr", members=2)
    params[0].grad = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0]], dtype=F64)
    opt.step()
    assert flat(params)[:3] == [0.0, 0.0, 0.0]
    assert flat([opt.state[params[0]]["step_size"]])[:3] == [0.1, 0.1, 0.1]
    assert flat(params)[3:] != [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("gradient", "expected"), [(2.0, 1e-6), (-2.0, 5e-3), (-1e-4, 50.0)])
def test_grprop_single_weight_gets_minus_delta_over_g(gradient: float, expected: float) -> None:
    """The sum over j ≠ m is empty: η = clip(−δ/g, Δmin, Δmax)."""
    _, params, sizes = grprop_with_gradients(
        [[torch.tensor([gradient], dtype=F64)]], variant="sag", delta=1e-2
    )
    assert sizes[0] == [pytest.approx(expected, rel=1e-15)]
    assert flat(params) == [pytest.approx(-expected if gradient > 0 else expected, rel=1e-15)]


# --- GRprop with the Wolfe line search -----------------------------------------------------------


SCALE = torch.tensor([1.0, 50.0, 0.2], dtype=F64)
TARGET = torch.tensor(
    [[5.0, -4.0, 6.0, 3.0], [0.02, -0.03, 0.01, 0.05], [0.5, 0.4, -0.3, -0.6]], dtype=F64
)


def quadratic_losses(w: Tensor) -> Tensor:
    """Member k: E_k(w) = s_k·Σ (w − c_k)², a different landscape for each member."""
    return SCALE * ((w - TARGET) ** 2).sum(dim=1)


def quadratic_gradient(w: Tensor) -> Tensor:
    return 2 * SCALE[:, None] * (w - TARGET)


def test_wolfe_step_lengths_satisfy_both_conditions_per_member() -> None:
    sigma1, sigma2 = 1e-4, 0.9
    w = torch.zeros(3, 4, dtype=F64, requires_grad=True)
    opt = GRprop([w], line_search="wolfe", members=3, sigma1=sigma1, sigma2=sigma2)
    closure = closure_for(opt, lambda: quadratic_losses(w))
    taus = []
    for _ in range(8):
        start = w.detach().clone()
        g = quadratic_gradient(start)
        opt.step(closure)
        direction = -opt.state[w]["step_size"] * g.sign()  # the rates after the recomputation
        largest = direction.abs().argmax(dim=1, keepdim=True)
        tau = ((w.detach() - start).gather(1, largest) / direction.gather(1, largest))[:, 0]
        assert torch.allclose(w.detach(), start + tau[:, None] * direction, rtol=0, atol=1e-14)
        slope0 = (g * direction).sum(dim=1)
        f0 = quadratic_losses(start)
        f1 = quadratic_losses(start + tau[:, None] * direction)
        slope1 = (quadratic_gradient(start + tau[:, None] * direction) * direction).sum(dim=1)
        assert bool((slope0 < 0).all())
        assert bool((f1 - f0 <= sigma1 * tau * slope0).all()), (f1 - f0, tau)
        assert bool((slope1 >= sigma2 * slope0).all()), (slope1, slope0)
        taus.append(tau)
    first = taus[0]
    # member 0 is far from its minimum (the search grows τ), member 1 is steep and close
    # (τ = 1 overshoots, the search shrinks it)
    assert first[0] > 1 and first[1] < 1, first
    assert len({round(float(t), 12) for t in first}) == 3


def test_wolfe_search_that_fails_keeps_the_best_point() -> None:
    """One evaluation only: member 0 overshoots at τ = 1 (loss up) and stays; member 1 is
    too short at τ = 1 (curvature fails) but its loss went down, so it keeps τ = 1."""
    target = torch.tensor([[0.01, -0.01], [5.0, 5.0]], dtype=F64)
    w = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    opt = GRprop([w], line_search="wolfe", members=2, max_line_search_evals=1)
    opt.step(closure_for(opt, lambda: ((w - target) ** 2).sum(dim=1)))
    eta = opt.state[w]["step_size"]
    assert flat([w[0]]) == [0.0, 0.0]
    assert torch.equal(w.detach()[1], eta[1])  # τ = 1 along −η·sign(g) = +η


def test_wolfe_needs_the_loss_of_each_member() -> None:
    w = torch.zeros(3, 4, dtype=F64, requires_grad=True)
    opt = GRprop([w], line_search="wolfe", members=3)
    quadratic_losses(w).sum().backward()
    with pytest.raises(ValueError, match=r"GRprop\(line_search='wolfe'\) needs a closure"):
        opt.step()
    with pytest.raises(ValueError, match=r"loss of each network: shape \(3,\), got \(\)"):
        opt.step(closure_for(opt, lambda: quadratic_losses(w).sum()))


def test_wolfe_needs_one_param_group() -> None:
    groups = [{"params": [torch.zeros(2, requires_grad=True)]}, {"params": [torch.zeros(1)]}]
    with pytest.raises(ValueError, match=r"one param group; got 2"):
        GRprop(groups, line_search="wolfe")


# --- the population contract --------------------------------------------------------------------


MEMBERS = 8
PER_MEMBER = {
    "delta0": torch.linspace(0.02, 0.2, MEMBERS, dtype=F64),
    "delta_min": torch.linspace(1e-7, 1e-3, MEMBERS, dtype=F64),
    "delta_max": torch.linspace(0.5, 50.0, MEMBERS, dtype=F64).flip(0),
    "eta_minus": torch.linspace(0.3, 0.7, MEMBERS, dtype=F64),
    "eta_plus": torch.linspace(1.1, 1.5, MEMBERS, dtype=F64).flip(0),
}
POPULATION_CASES = [(Rprop, {"variant": v}) for v in RPROP_VARIANTS] + [
    (GRprop, {"variant": v, "line_search": s}) for v in GRPROP_VARIANTS for s in ("none", "wolfe")
]


@pytest.mark.parametrize(("optimizer", "kwargs"), POPULATION_CASES)
def test_member_of_population_equals_network_alone(optimizer: Any, kwargs: dict[str, Any]) -> None:
    """Per-member hyperparameters; member i of K = 8 == seed i alone, bit for bit in float64."""
    steps = 25
    per_member = dict(PER_MEMBER)
    if optimizer is GRprop:
        per_member["delta"] = torch.logspace(-7, -2, MEMBERS, dtype=F64)
    population = init_mlp(MEMBERS, seed=11)
    opt = optimizer(population, **kwargs, **per_member, members=MEMBERS)
    closure = closure_for(opt, lambda: mlp_losses(population, MEMBERS))
    history = []
    for _ in range(steps):
        opt.step(closure)
        history.append([p.detach().clone() for p in population])

    for i in (0, 3, MEMBERS - 1):
        alone = init_mlp(None, seed=11 + i)
        values = {name: float(value[i]) for name, value in per_member.items()}
        single = optimizer(alone, **kwargs, **values)
        single_closure = closure_for(single, lambda alone=alone: mlp_losses(alone, None))
        for t in range(steps):
            single.step(single_closure)
            for p, q in zip(alone, history[t], strict=True):
                assert torch.equal(p.detach(), q[i]), (i, t)
