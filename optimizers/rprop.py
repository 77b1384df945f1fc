"""Rprop, resilient back-propagation: the variants Rprop+, Rprop−, iRprop+ and iRprop−.

The step-size schedule shared with GRprop (``rprop_hyperparameters``, ``initial_step_sizes``,
``adapt_step_sizes``) and its per-member helpers (``member_view``, ``clamp_to``) live here too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from optimizers._population import (
    Closure,
    Hyperparameter,
    as_hyperparameter,
    check_members,
    member_losses,
    per_member,
    require,
    require_choice,
)
from optimizers.compiling import compiled

VARIANTS = ("Rprop+", "Rprop-", "iRprop+", "iRprop-")


def rprop_hyperparameters(
    members: int | None,
    *,
    delta0: Hyperparameter,
    delta_min: Hyperparameter,
    delta_max: Hyperparameter,
    eta_minus: Hyperparameter,
    eta_plus: Hyperparameter,
) -> dict[str, Hyperparameter]:
    """Check Rprop's step-size bounds and factors (element-wise for per-member tensors).

    ALGORITHMS.md, search-space constraints: 0 < η⁻ < 1 < η⁺ and 0 ≤ Δmin < Δ0 ≤ Δmax.
    """
    delta0 = as_hyperparameter("delta0", delta0, members)
    delta_min = as_hyperparameter("delta_min", delta_min, members)
    delta_max = as_hyperparameter("delta_max", delta_max, members)
    eta_minus = as_hyperparameter("eta_minus", eta_minus, members)
    eta_plus = as_hyperparameter("eta_plus", eta_plus, members)
    require(_all(eta_minus > 0, eta_minus < 1), "eta_minus", eta_minus, "0 < eta_minus < 1")
    require(_all(eta_plus > 1), "eta_plus", eta_plus, "eta_plus > 1")
    require(_all(delta0 > 0), "delta0", delta0, "delta0 > 0")
    require(
        _all(delta_min >= 0, delta_min < delta0),
        "delta_min",
        delta_min,
        "0 <= delta_min < delta0",
    )
    require(_all(delta_max >= delta0), "delta_max", delta_max, "delta_max >= delta0")
    return {
        "delta0": delta0,
        "delta_min": delta_min,
        "delta_max": delta_max,
        "eta_minus": eta_minus,
        "eta_plus": eta_plus,
    }


def _all(*conditions: bool | Tensor) -> bool:
    """True when every condition holds for every member."""
    return all(bool(c.all()) if isinstance(c, Tensor) else bool(c) for c in conditions)


def member_view(t: Tensor, like: Tensor) -> Tensor:
    """Shape per-member values [K] (or one network's scalar) to broadcast over ``like``."""
    return t.reshape(tuple(t.shape) + (1,) * (like.dim() - t.dim()))


def clamp_to(t: Tensor, low: Hyperparameter, high: Hyperparameter, members: int | None) -> Tensor:
    """Clamp ``t`` (shape [K, ...] or any shape for one network) in place to [low, high]."""
    if isinstance(low, float) and isinstance(high, float):
        return t.clamp_(low, high)
    low_t = member_view(per_member(low, members, t), t)
    high_t = member_view(per_member(high, members, t), t)
    return t.clamp_(min=low_t, max=high_t)


@functools.lru_cache(maxsize=256)
def constant(value: float | tuple[float, ...], dtype: torch.dtype,
             device: torch.device) -> Tensor:
    """A hyperparameter (or a few) as a tensor, made once: on a GPU, making it each step is a
    copy from the host that waits for every kernel queued before it. Read, never written."""
    return torch.tensor(value, dtype=dtype, device=device)


def initial_step_sizes(param: Tensor, delta0: Hyperparameter) -> Tensor:
    """Δ0 for every weight of ``param`` (per member when ``delta0`` is a tensor)."""
    if isinstance(delta0, float):
        return torch.full_like(param, delta0, memory_format=torch.preserve_format)
    return torch.empty_like(param).copy_(member_view(delta0.to(param), param))


def adapt_step_sizes(
    step_size: Tensor, grad: Tensor, prev: Tensor, group: dict[str, Any]
) -> Tensor:
    """Rprop's schedule, in place: Δ ← clamp(Δ·η⁺ | Δ·η⁻ | Δ, Δmin, Δmax) for g·g_old >|<|= 0.

    Returns sign(g·g_old). The op sequence is ``torch.optim.Rprop``'s (multiply by the factor,
    then clamp every step size), which equals min(η⁺Δ, Δmax) / max(η⁻Δ, Δmin) / Δ while
    Δmin ≤ Δ ≤ Δmax. The factor is looked up from (η⁻, 1, η⁺) by sign + 1 (per member when
    the η are per member): exactly those values, several times faster than nested
    ``torch.where`` on the CPU.
    """
    sign = grad.mul(prev).sign()
    index = sign.add(1.0).long()  # 0: g·g_old < 0, 1: = 0, 2: > 0
    eta_minus, eta_plus, members = group["eta_minus"], group["eta_plus"], group["members"]
    if torch.compiler.is_compiling():  # one fused kernel: selects vectorise, lookups do not
        low = member_view(per_member(eta_minus, members, grad), grad)
        high = member_view(per_member(eta_plus, members, grad), grad)
        factor = torch.where(sign > 0, high, torch.where(sign < 0, low, 1.0))
    elif isinstance(eta_minus, float) and isinstance(eta_plus, float):
        factor = constant((eta_minus, 1.0, eta_plus), grad.dtype, grad.device)[index]
    else:
        low = per_member(eta_minus, members, grad)
        high = per_member(eta_plus, members, grad)
        table = torch.stack([low, torch.ones_like(low), high], dim=-1).reshape(-1, 3)
        factor = torch.gather(table, 1, index.reshape(table.shape[0], -1)).reshape(grad.shape)
    clamp_to(step_size.mul_(factor), group["delta_min"], group["delta_max"], members)
    return sign


_SCHEDULE = ("eta_minus", "eta_plus", "delta_min", "delta_max", "members")


def _minus(p: Tensor, grad: Tensor, losses: Tensor | None, prev: Tensor, step_size: Tensor,
           schedule: dict[str, Any], sign_changes: bool, improved: bool) -> Tensor | None:
    """Rprop− and iRprop− (``improved``): no weight-backtracking (``losses`` unused)."""
    sign = adapt_step_sizes(step_size, grad, prev, schedule)
    if improved:
        grad = grad.mul(sign.add(1.0).clamp_(max=1.0))  # g = 0 where g·g_old < 0
    p.addcmul_(grad.sign(), step_size, value=-1)
    prev.copy_(grad)
    return sign if sign_changes else None


def _plus(p: Tensor, grad: Tensor, losses: Tensor | None, prev: Tensor, step_size: Tensor,
          prev_update: Tensor, prev_loss: Tensor | None, schedule: dict[str, Any],
          sign_changes: bool) -> Tensor | None:
    """Rprop+ and iRprop+ (given ``losses``): weight-backtracking after a sign change,
    iRprop+ only for members whose loss grew."""
    sign = adapt_step_sizes(step_size, grad, prev, schedule)
    reversal = sign.lt(0)
    undo = reversal
    if prev_loss is not None:
        assert losses is not None
        worse = losses.to(prev_loss) > prev_loss
        undo = reversal & member_view(worse, p)
        prev_loss.copy_(losses)
    step = torch.where(
        reversal,
        torch.where(undo, -prev_update, torch.zeros_like(prev_update)),
        -(grad.sign() * step_size),
    )
    p.add_(step)
    prev_update.copy_(step)
    prev.copy_(torch.where(reversal, torch.zeros_like(grad), grad))
    return sign if sign_changes else None


@functools.cache
def _compiled(update: Callable[..., Tensor | None]) -> Callable[..., Tensor | None]:
    """``_minus`` or ``_plus`` under ``torch.compile``, one per process (two functions, so
    that each keeps its own few compiled versions: torch.compile keeps at most 8 per
    function)."""
    return compiled(update, f"the Rprop update ({update.__name__})")


class Rprop(Optimizer):
    r"""Resilient back-propagation (Riedmiller & Braun 1993; Igel & Hüsken 2000, 2003).

    Batch learning: g = ∂E/∂w is the gradient over all patterns, g_old the stored previous
    gradient, Δ a per-weight step size, Δw_prev the previous change of the weight. Every
    variant first adapts Δ from the sign of g·g_old:

    .. math::
        \Delta \leftarrow \begin{cases}
            \min(\eta^+ \Delta, \Delta_{max}) & g \cdot g_{old} > 0 \\
            \max(\eta^- \Delta, \Delta_{min}) & g \cdot g_{old} < 0 \\
            \Delta & g \cdot g_{old} = 0
        \end{cases}

    and then, per weight (ALGORITHMS.md, "Rprop family"):

    .. math::
        \begin{array}{l|l|l}
        \text{variant} & g \cdot g_{old} < 0 & g \cdot g_{old} \ge 0 \\ \hline
        \text{Rprop+} & w \leftarrow w - \Delta w_{prev};\ g_{old} \leftarrow 0
            & \Delta w = -\mathrm{sign}(g)\Delta;\ w \leftarrow w + \Delta w;\
              g_{old} \leftarrow g \\
        \text{iRprop+} & \text{if } E(t) > E(t-1):\ w \leftarrow w - \Delta w_{prev};\
            g_{old} \leftarrow 0 & \text{as Rprop+} \\
        \text{Rprop-} & w \leftarrow w - \mathrm{sign}(g)\Delta;\ g_{old} \leftarrow g
            & w \leftarrow w - \mathrm{sign}(g)\Delta;\ g_{old} \leftarrow g \\
        \text{iRprop-} & g_{old} \leftarrow 0 \text{ (no step for this weight now)}
            & w \leftarrow w - \mathrm{sign}(g)\Delta;\ g_{old} \leftarrow g
        \end{array}

    Rprop+ is the 1993 algorithm (the lecture's pseudo-code); Rprop− is the lecture's update
    rule without backtracking; iRprop+ and iRprop− are Igel & Hüsken's improved variants.
    iRprop− equals ``torch.optim.Rprop(lr=delta0, etas=(eta_minus, eta_plus),
    step_sizes=(delta_min, delta_max))`` bit for bit: the same op sequence, including the clamp
    of every step size after the multiplication.

    iRprop+ compares E(t), the error of *this network* at the current weights (the
    closure's loss), with E(t−1), which starts at +∞: ``step`` then needs a closure that
    returns the loss, and with ``members=K`` one loss per member (shape [K]). After a weight's
    sign change, Δw_prev holds the change actually applied in that step (the undo, or 0 when
    iRprop+ keeps the weight); it is never read, since g_old = 0 makes the next product zero.

    Args:
        params: parameters or param groups.
        variant: ``"Rprop+"``, ``"Rprop-"``, ``"iRprop+"`` or ``"iRprop-"``.
        delta0: initial step size Δ0 (Igel & Hüsken use 0.0125).
        delta_min, delta_max: bounds Δmin, Δmax, with 0 ≤ Δmin < Δ0 ≤ Δmax.
        eta_minus, eta_plus: factors η⁻, η⁺, with 0 < η⁻ < 1 < η⁺.
        members: K for a population of K networks (every parameter has a leading member
            dimension); the five hyperparameters above may then be tensors of shape [K].
    """

    record_sign_changes = False
    """Set True to keep, per weight, whether the last step saw a sign change
    (``state["sign_changed"]``): telemetry, off by default."""
    kernels: tuple[Callable[..., Tensor | None], Callable[..., Tensor | None]] = (_minus, _plus)
    """The updates of the − and + variants (``compile_kernels`` puts compiled ones in their
    place). Each returns sign(g·g_old) if asked for (a float tensor: a bool output would keep
    the compiled kernel from vectorising)."""

    def __init__(
        self,
        params: ParamsT,
        variant: str = "iRprop-",
        delta0: Hyperparameter = 0.1,
        delta_min: Hyperparameter = 1e-6,
        delta_max: Hyperparameter = 50.0,
        eta_minus: Hyperparameter = 0.5,
        eta_plus: Hyperparameter = 1.2,
        *,
        members: int | None = None,
    ) -> None:
        require_choice("variant", variant, VARIANTS)
        members = check_members(members)
        defaults: dict[str, Any] = {
            "variant": variant,
            **rprop_hyperparameters(
                members,
                delta0=delta0,
                delta_min=delta_min,
                delta_max=delta_max,
                eta_minus=eta_minus,
                eta_plus=eta_plus,
            ),
            "members": members,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            losses = None
            if group["variant"] == "iRprop+":
                who = "Rprop(variant='iRprop+')"
                losses = member_losses(loss, group["members"], who)
                if losses is None:
                    raise ValueError(f"{who} needs a closure that returns the loss")
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group, losses)
        return loss

    def compile_kernels(self) -> None:
        """Run the update through ``torch.compile`` (one fused kernel), compiled once per
        process for every Rprop instance, where compiling ``step`` itself would compile
        again for each new optimizer."""
        self.kernels = (_compiled(_minus), _compiled(_plus))

    def _update(self, p: Tensor, group: dict[str, Any], losses: Tensor | None) -> None:
        grad = p.grad
        assert grad is not None
        if grad.is_sparse:
            raise RuntimeError("Rprop does not support sparse gradients")
        compiled_kernels = self.kernels[0] is not _minus
        update, arguments = self.step_parts(p, group, losses, as_tensors=compiled_kernels)
        kernel = self.kernels[0] if update is _minus else self.kernels[1]
        self.step_done(p, kernel(p.detach(), grad, losses, *arguments))

    def step_parts(self, p: Tensor, group: dict[str, Any], losses: Tensor | None, *,
                   as_tensors: bool) -> tuple[Callable[..., Tensor | None], tuple[Any, ...]]:
        """One step of ``p`` as an update function and its arguments, for a caller that runs
        the update inside a compiled function of its own (the engine fuses it with the
        forward/backward pass): ``update(weights, gradient, losses, *arguments)`` changes the
        weights and the state in place and returns what ``step_done`` takes. The update is
        ``_minus`` or ``_plus``, not compiled; ``as_tensors``: float hyperparameters as
        tensors (compiled, a float would be compiled in as a constant). ``losses``: one per
        member, needed by iRprop+ only. Creates the state on the first call."""
        variant = group["variant"]
        state = self.state[p]
        if len(state) == 0:
            # g_old: the gradient stored by the previous step (0 after a sign change)
            state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            # Δ: the per-weight step size
            state["step_size"] = initial_step_sizes(p, group["delta0"])
            if variant in ("Rprop+", "iRprop+"):
                # Δw_prev: the change applied to the weight by the previous step
                state["prev_update"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if variant == "iRprop+":
                assert losses is not None
                # E(t−1): each member's loss at the previous step, +∞ before the first
                state["prev_loss"] = torch.full_like(losses, float("inf"))
        schedule = {name: group[name] for name in _SCHEDULE}
        if as_tensors:
            schedule = {name: constant(value, p.dtype, p.device) if isinstance(value, float)
                        else value for name, value in schedule.items()}
        if variant in ("Rprop-", "iRprop-"):
            return _minus, (state["prev"], state["step_size"], schedule,
                            self.record_sign_changes, variant == "iRprop-")
        return _plus, (state["prev"], state["step_size"], state["prev_update"],
                       state.get("prev_loss"), schedule, self.record_sign_changes)

    def step_done(self, p: Tensor, sign: Tensor | None) -> None:
        """Keep what an update returned: where g·g_old < 0 in this step (telemetry: the
        sign-change rate), when asked for."""
        if sign is not None:
            self.state[p]["sign_changed"] = sign.lt(0)
