"""Fraction of patterns a network gets right, per member of a population."""

import torch
from torch import Tensor


def accuracy(outputs: Tensor, targets: Tensor, kind: str) -> Tensor:
    """Fraction of patterns classified correctly.

    ``outputs`` is ``[..., patterns, outputs]`` (any leading population dimensions),
    ``targets`` is ``[patterns, outputs]`` or broadcastable to ``outputs``; the result has
    the leading shape ``[...]``.

    - ``binary``: a pattern is right when ``(output >= 0.5) == target`` for every output unit.
    - ``multiclass``: a pattern is right when the argmax of the outputs is the target class.
    - ``regression``: undefined; raises ``ValueError``.
    """
    if kind == "regression":
        raise ValueError("accuracy is undefined for regression tasks; compare losses instead")
    if outputs.dim() < 2 or outputs.shape[-2:] != targets.shape[-2:]:
        raise ValueError(f"accuracy needs outputs [..., patterns, outputs] matching targets "
                         f"[patterns, outputs], got {tuple(outputs.shape)} and "
                         f"{tuple(targets.shape)}")
    if kind == "binary":
        correct = ((outputs >= 0.5) == (targets >= 0.5)).all(dim=-1)
    elif kind == "multiclass":
        correct = outputs.argmax(dim=-1) == targets.argmax(dim=-1)
    else:
        raise ValueError(f"Invalid kind {kind!r} (allowed: binary, multiclass, regression)")
    dtype = outputs.dtype if outputs.is_floating_point() else torch.get_default_dtype()
    return correct.to(dtype).mean(dim=-1)
