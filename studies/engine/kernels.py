"""The engine's compiled kernels for small MLP populations, made once per process and shape.

- ``compiled_pass``: the forward/backward pass written out weight by weight (``unrolled``),
  with each row's loss and whether its loss and weights are finite.
- ``compiled_epoch``: that pass and the optimizer's update in one compiled function, for
  batch learning with an optimizer that offers its update (``Rprop.step_parts``). One
  call per epoch instead of two, and the gradient never leaves the kernel: on a GPU it is
  neither written to memory nor read back (a sixth of an Rprop epoch's bytes), and on the
  CPU the per-call cost of a compiled function, which dominates small populations, is paid
  once. The weights after the update are a new tensor, so that the stop rule can still
  record a stopping member's weights at the epoch it stops.

Equal shapes share a kernel: every trial of a study builds a new population of the same
shape, and torch.compile would otherwise compile again for each (and, past its recompile
limit, run eager). Each kernel gets a code object of its own (``_own_code``): torch.compile
keeps at most 8 compiled versions per code object, and every closure one ``def`` makes
shares its code, so a process that trains several shapes or optimizers would otherwise run
out of them.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable
from typing import Any

from torch import Tensor

from models import unrolled
from optimizers.compiling import compiled
from studies.engine.losses import LOSSES

Pass = tuple[Tensor, Tensor, Tensor, Tensor]
"""Outputs, gradient, per-row losses and per-row finiteness."""
Epoch = tuple[Tensor, Tensor, Tensor, Tensor, Any]
"""Outputs, per-row losses and finiteness (at the weights before the update), the weights
after the update, and what the update returned."""
Update = Callable[..., Any]
"""``update(weights, gradient, losses, *arguments)``: changes the weights and the optimizer's
state in place."""


_NUMBERS = itertools.count()


def _own_code(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``function`` with a code object of its own, named ``name`` and a number."""
    label = f"{name}_{next(_NUMBERS)}"
    code = function.__code__.replace(co_name=label)
    return types.FunctionType(code, function.__globals__, label, function.__defaults__,
                              function.__closure__)


def variant_of(flat: Tensor, arguments: tuple[Any, ...]) -> tuple[Any, ...]:
    """What an update's compiled code depends on besides sizes: the weights' dtype, its
    flags, which arguments are absent and which hyperparameters are per member."""
    parts: list[Any] = [flat.dtype, flat.device.type]
    for argument in arguments:
        if isinstance(argument, bool) or argument is None:
            parts.append(argument)
        elif isinstance(argument, dict):
            parts.append(tuple((name, value.dim()) for name, value in argument.items()
                               if isinstance(value, Tensor)))
    return tuple(parts)


def _written_out(layout: unrolled.Layout, loss_name: str) -> Callable[..., Pass]:
    loss = LOSSES[loss_name]

    def written_out(flat: Tensor, inputs: Tensor, targets: Tensor) -> Pass:
        outputs, gradient = unrolled.gradient(layout, flat, inputs,
                                              lambda out: loss.output_gradient(out, targets))
        losses = loss.value(outputs, targets)
        finite = losses.isfinite() & flat.sum(dim=1).isfinite()
        return outputs, gradient, losses, finite

    return written_out


@functools.cache
def compiled_pass(layout: unrolled.Layout, loss_name: str) -> Callable[..., Pass]:
    """``pass(flat, inputs, targets)``: outputs, gradient, losses and finiteness."""
    return compiled(_own_code(_written_out(layout, loss_name), "unrolled_pass"),
                    "the forward/backward pass")


@functools.cache
def compiled_epoch(layout: unrolled.Layout, loss_name: str, update: Update,
                   variant: tuple[Any, ...]) -> Callable[..., Epoch]:
    """``epoch(flat, inputs, targets, *arguments)``: the pass at ``flat`` and
    ``update(new weights, gradient, losses, *arguments)`` applied to a copy of ``flat``;
    one per ``variant`` (``variant_of(flat, arguments)``)."""
    written_out = _written_out(layout, loss_name)

    def epoch(flat: Tensor, inputs: Tensor, targets: Tensor, *arguments: Any) -> Epoch:
        outputs, gradient, losses, finite = written_out(flat, inputs, targets)
        stepped = flat.clone()
        returned = update(stepped, gradient, losses, *arguments)
        return outputs, losses, finite, stepped, returned

    return compiled(_own_code(epoch, f"fused_epoch{update.__name__}"),
                    f"the fused epoch ({update.__name__})")
