"""A population of points x ∈ Rᵈ: the "model" of a function-minimisation task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.seeding import uniform


class Point(nn.Module):
    """K independent points stored as one parameter ``flat`` [members, dimension];
    ``forward()`` returns them, and the task's objective is the loss."""

    def __init__(self, dimension: int, *, members: int = 1, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__()
        self.flat = nn.Parameter(torch.zeros(members, dimension, dtype=dtype, device=device))

    @property
    def members(self) -> int:
        return self.flat.shape[0]

    def forward(self) -> Tensor:
        return self.flat

    @torch.no_grad()
    def initialise(self, start: Sequence[float], seeds: Tensor, spread: float = 0.0) -> None:
        """Every member at ``start``, moved by a seed-keyed uniform jitter in ±``spread``."""
        dimension = self.flat.shape[1]
        if seeds.shape != (self.members,):
            raise ValueError(f"need one seed per member ({self.members}), got {tuple(seeds.shape)}")
        if len(start) != dimension:
            raise ValueError(f"Invalid init.point: {list(start)!r} needs {dimension} coordinates")
        point = torch.tensor(list(start), dtype=self.flat.dtype, device=self.flat.device)
        jitter = (2.0 * uniform(seeds.to(self.flat.device), 0, dimension) - 1.0) * spread
        self.flat.copy_(point + jitter.to(self.flat.dtype))

    def layer_weights(self, flat_member: Tensor) -> list[float]:
        values: list[float] = flat_member.detach().cpu().tolist()
        return values
