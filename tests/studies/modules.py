"""A user-defined module for the engine's torch.func path (named in specs by import path)."""

from torch import Tensor, nn


def xor_net(hidden: int = 3) -> nn.Module:
    """2-hidden-1 with a tanh hidden layer and a sigmoid output, in float32 by default."""
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Sigmoid())


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def forward(self, inputs: Tensor) -> Tensor:
        raise RuntimeError("this module always fails (a test of failing trials)")


def broken_net() -> nn.Module:
    """A module whose forward pass raises: every trial using it fails."""
    return _Broken()
