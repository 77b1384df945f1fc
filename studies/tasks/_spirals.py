"""Lang & Witbrock's two-spirals benchmark (1988), 194 points in two interlocking spirals."""

import math

import torch

from ._dataset import Dataset

POINTS_PER_SPIRAL = 97
RADIUS = 6.5


def two_spirals() -> Dataset:
    """The two-spirals task with the standard (CMU benchmark) generator.

    For i = 0..96: φ = iπ/16, r = 6.5·(104 − i)/104, point (r·sin φ, r·cos φ) of class 0,
    followed by its reflection through the origin (−r·sin φ, −r·cos φ) of class 1. Patterns
    alternate class 0, class 1, starting at the outer end. Inputs are divided by the
    largest radius, 6.5, so that both coordinates lie in [−1, 1].
    """
    steps = torch.arange(POINTS_PER_SPIRAL, dtype=torch.float64)
    angle = steps * math.pi / 16
    radius = RADIUS * (104 - steps) / 104
    spiral = torch.stack((radius * torch.sin(angle), radius * torch.cos(angle)), dim=1)
    inputs = torch.stack((spiral, -spiral), dim=1).reshape(-1, 2) / RADIUS
    targets = torch.tensor((0.0, 1.0), dtype=torch.float64).repeat(POINTS_PER_SPIRAL)
    return Dataset(
        name="spirals",
        inputs=inputs,
        targets=targets.unsqueeze(1),
        kind="binary",
        validation_inputs=None,
        validation_targets=None,
        description="Two spirals, 194 points (97 per spiral), inputs scaled by 1/6.5 to "
                    "[-1, 1] (Lang & Witbrock 1988, CMU benchmark generator)",
    )
