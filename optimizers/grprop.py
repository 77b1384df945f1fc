"""GRprop, globally convergent Rprop (Anastasiadis, Magoulas & Vrahatis 2005), sag and slr."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from optimizers._population import (
    Closure,
    Hyperparameter,
    as_hyperparameter,
    broadcast,
    check_members,
    flatten_members,
    member_losses,
    require,
    require_choice,
    unflatten_members,
)
from optimizers.rprop import (
    adapt_step_sizes,
    clamp_to,
    initial_step_sizes,
    member_view,
    rprop_hyperparameters,
)

VARIANTS = ("sag", "slr")
LINE_SEARCHES = ("none", "wolfe")


class GRprop(Optimizer):
    r"""GRprop: Rprop− with one learning rate recomputed per step (Anastasiadis et al. 2005).

    "New globally convergent training scheme based on the resilient propagation
    algorithm", Neurocomputing 64 (2005); the lecture's "→ GRprop" slides; R neuralnet's
    ``algorithm = "sag" | "slr"`` (Günther & Fritsch). Per network (per member), over all
    parameters of the param group flattened into one vector η, g of N weights:

    .. math::
        \begin{aligned}
        &\eta_j \leftarrow \begin{cases}
            \min(\eta^+ \eta_j, \Delta_{max}) & g_j \cdot g_{old,j} > 0 \\
            \max(\eta^- \eta_j, \Delta_{min}) & g_j \cdot g_{old,j} < 0 \\
            \eta_j & g_j \cdot g_{old,j} = 0
          \end{cases} \qquad \text{(Rprop− schedule, every weight)} \\
        &m = \begin{cases}
            \arg\min_{j:\, g_j \ne 0} |g_j| & \text{sag (smallest absolute gradient)} \\
            \arg\min_{j:\, g_j \ne 0} \eta_j & \text{slr (smallest learning rate)}
          \end{cases} \\
        &\eta_m \leftarrow \mathrm{clip}\Big(-\frac{\sum_{j \ne m} \eta_j g_j + \delta}{g_m},
            \Delta_{min}, \Delta_{max}\Big) \\
        &w \leftarrow w - \tau \,\mathrm{diag}(\eta)\, \mathrm{sign}(g), \qquad
            g_{old} \leftarrow g
        \end{aligned}

    The recomputed η_m replaces that weight's step size in the state, so the next
    adaptation starts from it. Ties in the argmin go to the *first* weight: the lowest flat
    index, the group's parameters taken in order, each flattened row-major (torch's
    ``argmin`` returns the first minimum). R neuralnet also takes its first minimum, but over
    its own layout (column-major matrices with the bias first), so on exact ties the two may
    pick different weights. A network whose gradient is zero everywhere takes no step and
    recomputes nothing. With one weight only (or one nonzero gradient) the sum is empty and
    η_m = clip(−δ/g_m): Δmin when g_m > 0, min(δ/|g_m|, Δmax) when g_m < 0.

    *Descent direction.* The recomputation makes Σ_j η_j g_j = −δ < 0 (before the clip), which
    is the descent condition gᵀd < 0 for the direction d = η. The update, however, moves
    along d = −diag(η)·sign(g), whose slope gᵀd = −Σ_j η_j |g_j| is negative for every
    positive η, whatever η_m is; and when the formula gives η_m < Δmin (for instance a
    negative value) the clip undoes the equality. We follow ALGORITHMS.md and R neuralnet
    literally (formula, clip, write-back, sign update); the line search uses the direction
    actually taken, d = −diag(η)·sign(g).

    *Step length τ.* ``line_search="none"``: τ = 1 (R neuralnet). ``line_search="wolfe"``: a
    τ per member satisfying the (weak) Wolfe conditions of the paper,

    .. math::
        f(w + \tau d) - f(w) \le \sigma_1 \tau\, g^\top d, \qquad
        \nabla f(w + \tau d)^\top d \ge \sigma_2\, g^\top d,

    found by bracketing and bisection: τ = 1 first; when the first condition fails the
    upper bracket becomes τ, when only the second fails the lower bracket becomes τ; the
    next τ is the bracket's midpoint, or twice the lower bracket while there is no upper
    one. Every trial evaluates all members at once (one closure call, each member at its own
    τ); a member that satisfies both conditions keeps its τ. After
    ``max_line_search_evals`` closure calls, a member still searching takes the trial with
    the lowest loss if it is lower than f(w), and otherwise stays at w (τ = 0); its step
    sizes and g_old are updated all the same. The closure must zero the gradients, compute
    the loss of every member (shape [K] with ``members=K``) and back-propagate their sum;
    ``step`` returns the loss at the starting point, and afterwards the ``.grad`` fields
    hold the gradient of the last trial. The Wolfe search works on one param group.

    Args:
        params: parameters or param groups.
        variant: ``"sag"`` or ``"slr"``, the choice of m.
        delta0, delta_min, delta_max, eta_minus, eta_plus: the Rprop schedule, with
            0 ≤ Δmin < Δ0 ≤ Δmax and 0 < η⁻ < 1 < η⁺.
        delta: δ > 0 (R neuralnet uses 1e-6).
        line_search: ``"none"`` (τ = 1) or ``"wolfe"``.
        members: K for a population of K networks; delta0, delta_min, delta_max, eta_minus,
            eta_plus and delta may then be tensors of shape [K].
        sigma1, sigma2: the Wolfe constants, 0 < σ₁ < σ₂ < 1.
        max_line_search_evals: closure calls per step for the Wolfe search (at least 1).
    """

    record_sign_changes = False
    """Set True to keep, per weight, whether the last step saw a sign change
    (``state["sign_changed"]``): telemetry, off by default."""

    def __init__(
        self,
        params: ParamsT,
        variant: str = "sag",
        delta0: Hyperparameter = 0.1,
        delta_min: Hyperparameter = 1e-6,
        delta_max: Hyperparameter = 50.0,
        eta_minus: Hyperparameter = 0.5,
        eta_plus: Hyperparameter = 1.2,
        delta: Hyperparameter = 1e-6,
        line_search: str = "none",
        *,
        members: int | None = None,
        sigma1: float = 1e-4,
        sigma2: float = 0.9,
        max_line_search_evals: int = 20,
    ) -> None:
        require_choice("variant", variant, VARIANTS)
        require_choice("line_search", line_search, LINE_SEARCHES)
        members = check_members(members)
        schedule = rprop_hyperparameters(
            members,
            delta0=delta0,
            delta_min=delta_min,
            delta_max=delta_max,
            eta_minus=eta_minus,
            eta_plus=eta_plus,
        )
        delta = as_hyperparameter("delta", delta, members)
        require((delta > 0) & (delta < float("inf")), "delta", delta, "0 < delta < inf")
        sigma1 = float(as_hyperparameter("sigma1", sigma1, None))
        sigma2 = float(as_hyperparameter("sigma2", sigma2, None))
        require(0 < sigma1 < sigma2, "sigma1", sigma1, "0 < sigma1 < sigma2")
        require(sigma1 < sigma2 < 1, "sigma2", sigma2, "sigma1 < sigma2 < 1")
        evals_ok = isinstance(max_line_search_evals, int) and not isinstance(
            max_line_search_evals, bool
        )
        if not (evals_ok and max_line_search_evals >= 1):
            raise ValueError(
                f"Invalid max_line_search_evals: {max_line_search_evals!r} "
                "(allowed: an integer >= 1)"
            )
        defaults: dict[str, Any] = {
            "variant": variant,
            **schedule,
            "delta": delta,
            "line_search": line_search,
            "members": members,
            "sigma1": sigma1,
            "sigma2": sigma2,
            "max_line_search_evals": max_line_search_evals,
        }
        super().__init__(params, defaults)
        self._check_line_search_groups()

    def _check_line_search_groups(self) -> None:
        wolfe = any(group["line_search"] == "wolfe" for group in self.param_groups)
        if wolfe and len(self.param_groups) != 1:
            raise ValueError(
                "GRprop(line_search='wolfe') searches one step length per network over one "
                f"param group; got {len(self.param_groups)} param groups"
            )

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_line_search_groups()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group["line_search"] == "none":
                self._direction(group, params)
                for p in params:
                    assert p.grad is not None
                    p.addcmul_(p.grad.sign(), self.state[p]["step_size"], value=-1)
                continue
            who = "GRprop(line_search='wolfe')"
            start_loss = member_losses(loss, group["members"], who)
            if closure is None or start_loss is None:
                raise ValueError(f"{who} needs a closure that returns the loss")
            grad, direction = self._direction(group, params)
            self._wolfe_search(group, params, closure, start_loss, grad, direction)
        return loss

    def _direction(self, group: dict[str, Any], params: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Adapt the step sizes, recompute η_m; return flat g and d = −diag(η)·sign(g)."""
        members = group["members"]
        grads: list[Tensor] = []
        step_sizes: list[Tensor] = []
        for p in params:
            grad = p.grad
            assert grad is not None
            if grad.is_sparse:
                raise RuntimeError("GRprop does not support sparse gradients")
            state = self.state[p]
            if len(state) == 0:
                # g_old: the gradient stored by the previous step
                state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                # η: the per-weight learning rate (step size), η_m included
                state["step_size"] = initial_step_sizes(p, group["delta0"])
            sign = adapt_step_sizes(state["step_size"], grad, state["prev"], group)
            if self.record_sign_changes:
                # where g·g_old < 0 in this step (telemetry: the sign-change rate)
                state["sign_changed"] = sign.lt(0)
            state["prev"].copy_(grad)
            grads.append(grad)
            step_sizes.append(state["step_size"])
        flat_grad = flatten_members(grads, members)
        flat_eta = flatten_members(step_sizes, members)
        self._recompute_rate(group, flat_eta, flat_grad)
        for step_size, piece in zip(
            step_sizes, unflatten_members(flat_eta, step_sizes, members), strict=True
        ):
            step_size.copy_(piece)
        return flat_grad, -(flat_grad.sign() * flat_eta)

    @staticmethod
    def _recompute_rate(group: dict[str, Any], eta: Tensor, grad: Tensor) -> None:
        """η_m ← clip(−(Σ_{j≠m} η_j g_j + δ)/g_m, Δmin, Δmax) in place, per member ([K, N])."""
        nonzero = grad != 0
        key = grad.abs() if group["variant"] == "sag" else eta
        m = torch.where(nonzero, key, torch.full_like(key, float("inf"))).argmin(
            dim=-1, keepdim=True
        )
        others = ordered_sum((eta * grad).scatter(-1, m, 0.0)).unsqueeze(-1)
        delta = broadcast(group["delta"], eta)
        eta_m = -(others + delta) / grad.gather(-1, m)
        clamp_to(eta_m, group["delta_min"], group["delta_max"], group["members"])
        keep = eta.gather(-1, m)
        eta.scatter_(-1, m, torch.where(nonzero.any(dim=-1, keepdim=True), eta_m, keep))

    def _wolfe_search(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        closure: Closure,
        start_loss: Tensor,
        grad: Tensor,
        direction: Tensor,
    ) -> None:
        """Move every member to w + τd with its own Wolfe step length τ (see the class doc)."""
        members = group["members"]
        who = "GRprop(line_search='wolfe')"
        sigma1, sigma2 = group["sigma1"], group["sigma2"]
        start = flatten_members([p.detach() for p in params], members)
        slope0 = ordered_sum(grad * direction)
        f0 = start_loss.to(slope0)
        searching = slope0 < 0
        zeros = torch.zeros_like(slope0)
        tau = torch.where(searching, torch.ones_like(slope0), zeros)
        low, high = zeros, torch.full_like(slope0, float("inf"))
        accepted, best_tau, best_loss = zeros, zeros, f0
        for _ in range(group["max_line_search_evals"]):
            if not bool(searching.any()):
                break
            self._move(params, start, torch.where(searching, tau, accepted), direction, members)
            with torch.enable_grad():
                trial = member_losses(closure(), members, who)
            assert trial is not None
            trial = trial.to(slope0)
            slope = ordered_sum(flatten_members(_grads(params), members) * direction)
            sufficient = trial - f0 <= sigma1 * tau * slope0
            curvature = slope >= sigma2 * slope0
            better = searching & (trial < best_loss)
            best_loss = torch.where(better, trial, best_loss)
            best_tau = torch.where(better, tau, best_tau)
            done = searching & sufficient & curvature
            accepted = torch.where(done, tau, accepted)
            searching = searching & ~done
            high = torch.where(searching & ~sufficient, tau, high)
            low = torch.where(searching & sufficient & ~curvature, tau, low)
            tau = torch.where(torch.isinf(high), 2 * low, (low + high) / 2)
        final = torch.where(searching, best_tau, accepted)
        self._move(params, start, final, direction, members)

    @staticmethod
    def _move(
        params: list[Tensor], start: Tensor, tau: Tensor, direction: Tensor, members: int | None
    ) -> None:
        """Set the weights to start + τ·d, τ per member."""
        moved = start + member_view(tau, start) * direction
        for p, piece in zip(params, unflatten_members(moved, params, members), strict=True):
            p.copy_(piece)


def ordered_sum(flat: Tensor) -> Tensor:
    """Σ over the last dimension, accumulated left to right (flat index order).

    A fixed order makes each member's sum independent of the population size K and equal,
    on CPU, to a plain loop ``s = 0.0; s += x`` bit for bit (``cumsum`` accumulates in order,
    ``sum`` uses a vectorised tree whose order depends on the shape). GRprop divides this sum
    by a gradient that may be tiny, which amplifies any rounding difference.
    """
    return flat.cumsum(dim=-1)[..., -1]


def _grads(params: list[Tensor]) -> list[Tensor]:
    grads = []
    for p in params:
        if p.grad is None:
            raise ValueError("GRprop(line_search='wolfe'): the closure left a gradient unset")
        grads.append(p.grad)
    return grads
