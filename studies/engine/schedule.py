"""Which patterns each member sees at each step of an epoch (online / batch / mini-batch).

Batch: every step is the whole training set, shared by all members. Online and mini-batch
walk through the patterns in a fixed order (the task's, or one the spec gives as a list of
pattern indices) or in an order shuffled anew every
epoch from the member's seed (``models.seeding``: member i's order is the same in any
population, so paired seeds see the same data in every arm).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from models.seeding import permutations

ORDER_STREAM = 1 << 40
"""Random streams ≥ this are data orders (one per epoch); lower streams are weights."""


@dataclass(frozen=True)
class Step:
    """The patterns of one optimizer step: shared [B, ·] or per member [K, B, ·]."""

    inputs: Tensor
    targets: Tensor


def steps(inputs: Tensor, targets: Tensor, *, mode: str, order: str | list[int],
          batch_size: int | None, seeds: Tensor, epoch: int) -> Iterator[Step]:
    """The optimizer steps of epoch ``epoch`` (1-based)."""
    patterns = inputs.shape[0]
    if mode == "batch":
        yield Step(inputs, targets)
        return
    size = 1 if mode == "online" else min(batch_size or 1, patterns)
    if isinstance(order, list):
        inputs, targets = inputs[order], targets[order]
    if order == "fixed" or isinstance(order, list):
        for start in range(0, patterns, size):
            yield Step(inputs[start : start + size], targets[start : start + size])
        return
    order_of_member = permutations(seeds, ORDER_STREAM + epoch, patterns).to(inputs.device)
    for start in range(0, patterns, size):
        chosen = order_of_member[:, start : start + size]
        yield Step(inputs[chosen], targets[chosen])


def epoch_order(seed: int, epoch: int, patterns: int) -> list[int]:
    """The shuffled order in which seed ``seed`` sees the patterns in epoch ``epoch``."""
    order = permutations(torch.tensor([seed]), ORDER_STREAM + epoch, patterns)[0]
    return [int(index) for index in order]
