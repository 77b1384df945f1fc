"""A user-defined module for the engine's torch.func path (named in specs by import path)."""

from torch import nn


def xor_net(hidden: int = 3) -> nn.Module:
    """2-hidden-1 with a tanh hidden layer and a sigmoid output, in float32 by default."""
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Sigmoid())
