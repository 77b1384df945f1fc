"""Population support shared by every optimizer: per-member hyperparameters and reductions.

A param group may hold a *population* of K independent networks (``members=K``): every
parameter then has a leading member dimension of size K, and member i of every parameter
belongs to network i. A hyperparameter is either a float shared by all members or a 1-D
tensor of shape [K], one value per member. Every per-network quantity (a sum over weights,
an argmin, a loss comparison, a step length) is reduced over all parameters of the group and
all dimensions but the first, never across members. With ``members=None`` (the default) the
group is one ordinary network and hyperparameters are floats.

A closure may return per-member losses of shape [K]; algorithms that compare losses use them
member by member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

Hyperparameter = float | Tensor
"""A float shared by all members, or a tensor of shape [members]."""


def check_members(members: int | None) -> int | None:
    """Validate the ``members`` argument of an optimizer."""
    if members is not None and (isinstance(members, bool) or members < 1):
        raise ValueError(f"Invalid members: {members!r} (allowed: None or an integer >= 1)")
    return members


def as_hyperparameter(name: str, value: Hyperparameter, members: int | None) -> Hyperparameter:
    """Return ``value`` as a float, or as a detached float64 [members] tensor, after checks.

    Per-member values are kept in float64, the precision of a Python float, so that a value
    derived from them (1 − α, lr / (1 − β₁ᵗ)) is rounded exactly as the shared float would be.
    """
    if isinstance(value, Tensor):
        if members is None:
            raise ValueError(
                f"Invalid {name}: a tensor needs members=K (per-member values); got shape "
                f"{tuple(value.shape)} with members=None"
            )
        if value.shape != (members,):
            raise ValueError(
                f"Invalid {name}: per-member values must have shape ({members},); "
                f"got {tuple(value.shape)}"
            )
        return value.detach().to(torch.float64)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Invalid {name}: {value!r} (allowed: a number or a tensor of shape [K])")
    return float(value)


def _describe(value: Hyperparameter) -> str:
    if isinstance(value, Tensor):
        return f"tensor {value.tolist()!r}" if value.numel() <= 8 else f"tensor of {value.numel()}"
    return repr(value)


def require(ok: bool | Tensor, name: str, value: Hyperparameter, allowed: str) -> None:
    """Raise ``ValueError("Invalid NAME: VALUE (allowed: ALLOWED)")`` unless ``ok`` holds.

    A tensor ``ok`` (one check per member) must hold everywhere.
    """
    holds = bool(ok.all()) if isinstance(ok, Tensor) else bool(ok)
    if not holds:
        raise ValueError(f"Invalid {name}: {_describe(value)} (allowed: {allowed})")


def require_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise ``ValueError("Invalid NAME: VALUE (allowed: 'a', 'b')")`` unless it is a choice."""
    if not (isinstance(value, str) and value in choices):
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"Invalid {name}: {value!r} (allowed: {allowed})")


def broadcast(value: Hyperparameter, like: Tensor) -> Hyperparameter:
    """Shape a per-member hyperparameter [K] as [K, 1, ..., 1] to broadcast over ``like``."""
    if isinstance(value, Tensor):
        return _member_view(value, like)
    return value


def _member_view(value: Tensor, like: Tensor) -> Tensor:
    return value.to(dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


def add_(target: Tensor, tensor: Tensor, *, alpha: Hyperparameter) -> Tensor:
    """``target += alpha · tensor`` in place, rounded as ``target.add_(tensor, alpha=alpha)``.

    A float ``alpha`` calls exactly that op, so a float64 run equals torch's optimizers bit
    for bit. A per-member ``alpha`` goes through ``addcmul_``, which rounds the same way (one
    fused multiply-add, on CPU and CUDA), so member i matches a run with its own float alpha.
    """
    if isinstance(alpha, Tensor):
        return target.addcmul_(tensor, _member_view(alpha, target))
    return target.add_(tensor, alpha=alpha)


def addcmul_(target: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Hyperparameter) -> Tensor:
    """``target += value · tensor1 · tensor2`` in place, rounded as torch's ``addcmul_``.

    torch's kernels associate the product differently: on CPU (value · tensor1) · tensor2,
    on CUDA value · (tensor1 · tensor2), each fused with the sum. A per-member ``value``
    follows the kernel of ``target``'s device, so member i matches its float run bit for bit.
    """
    if isinstance(value, Tensor):
        member_value = _member_view(value, target)
        if target.device.type == "cpu":
            return target.addcmul_(tensor1 * member_value, tensor2)
        return target.addcmul_(tensor1 * tensor2, member_value)
    return target.addcmul_(tensor1, tensor2, value=value)


def addcdiv_(target: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Hyperparameter) -> Tensor:
    """``target += value · tensor1 / tensor2`` in place, rounded as torch's ``addcdiv_``.

    torch's CPU kernel rounds (value · tensor1) / tensor2 and then the sum; its CUDA kernel
    rounds tensor1 / tensor2 and fuses value · (that) with the sum. A per-member ``value``
    follows the kernel of ``target``'s device, so member i matches its float run bit for bit.
    """
    if isinstance(value, Tensor):
        member_value = _member_view(value, target)
        if target.device.type == "cpu":
            return target.add_(tensor1 * member_value / tensor2)
        return target.addcmul_(tensor1 / tensor2, member_value)
    return target.addcdiv_(tensor1, tensor2, value=value)


def elementwise(function: Callable[..., float], *values: Hyperparameter) -> Hyperparameter:
    """Apply a float function to hyperparameters, member by member where any is per-member.

    Each member's value is computed by the same Python float arithmetic as a shared float
    would be (``beta ** step`` is libm's ``pow``, which tensor ``pow`` does not always match
    to the last bit); the result is a float, or a float64 [K] tensor on the inputs' device.
    """
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return function(*values)
    members = tensors[0].shape[0]
    columns = [v.tolist() if isinstance(v, Tensor) else [v] * members for v in values]
    return torch.tensor(
        [function(*row) for row in zip(*columns, strict=True)],
        dtype=torch.float64,
        device=tensors[0].device,
    )


def check_member_dimension(params: Iterable[Tensor], members: int | None) -> None:
    """With ``members=K``, require every parameter to have a leading member dimension of size K."""
    if members is None:
        return
    for p in params:
        if p.dim() == 0 or p.shape[0] != members:
            raise ValueError(
                f"Invalid params: with members={members} every parameter needs a leading "
                f"member dimension of size {members}; got shape {tuple(p.shape)}"
            )


def per_member(value: Hyperparameter, members: int | None, like: Tensor) -> Tensor:
    """A hyperparameter as a tensor of per-member values: shape [K] (or [] for one network)."""
    if isinstance(value, Tensor):
        value = value.to(dtype=like.dtype, device=like.device)
        return value.expand(members) if value.dim() == 0 and members is not None else value
    shape = () if members is None else (members,)
    return torch.full(shape, value, dtype=like.dtype, device=like.device)


def member_sum(tensors: Sequence[Tensor], members: int | None) -> Tensor:
    """Sum every tensor over all its elements of one network: shape [K] (or [] for one network)."""
    if members is None:
        return torch.stack([t.sum() for t in tensors]).sum()
    return torch.stack([t.reshape(members, -1).sum(dim=1) for t in tensors]).sum(dim=0)


def flatten_members(tensors: Sequence[Tensor], members: int | None) -> Tensor:
    """Concatenate the tensors of a group into one [K, N] (or [N]) view of each network."""
    if members is None:
        return torch.cat([t.reshape(-1) for t in tensors])
    return torch.cat([t.reshape(members, -1) for t in tensors], dim=1)


def unflatten_members(flat: Tensor, like: Sequence[Tensor], members: int | None) -> list[Tensor]:
    """Split a [K, N] (or [N]) tensor from ``flatten_members`` into tensors shaped ``like``."""
    pieces: list[Tensor] = []
    offset = 0
    for t in like:
        size = t.numel() // (members or 1)
        chunk = flat[..., offset : offset + size]
        pieces.append(chunk.reshape(t.shape))
        offset += size
    return pieces


def member_losses(loss: Tensor | float | None, members: int | None, who: str) -> Tensor | None:
    """Check that a closure's loss holds one value per member when the algorithm needs it."""
    if loss is None:
        return None
    loss_t = torch.as_tensor(loss).detach()
    expected: tuple[int, ...] = () if members is None else (members,)
    if tuple(loss_t.shape) != expected:
        raise ValueError(
            f"{who} needs the closure to return the loss of each network: shape {expected}, "
            f"got {tuple(loss_t.shape)}"
        )
    return loss_t


Closure = Callable[[], Tensor]
