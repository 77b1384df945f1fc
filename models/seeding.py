"""Counter-based random numbers: the same seed gives the same numbers in any population.

Member i of a population must start from exactly the weights, and see exactly the data
order, that seed i would get when trained alone, on any device. A stateful generator
cannot promise that (its stream depends on how many members came before), so every random
number here is a pure function of (seed, stream, index): the SplitMix64 finaliser applied to
a counter, computed with int64 tensor arithmetic, which is exact on CPU and CUDA alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: Tensor, bits: int) -> Tensor:
    """Logical (unsigned) right shift of int64 values."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix(x: Tensor) -> Tensor:
    """The SplitMix64 finaliser: a bijection of int64 values with good avalanche."""
    x = x ^ _shift_right(x, 30)
    x = x * _signed(_MIX1)
    x = x ^ _shift_right(x, 27)
    x = x * _signed(_MIX2)
    return x ^ _shift_right(x, 31)


def uniform(seeds: Tensor, stream: int, count: int, *,
            dtype: torch.dtype = torch.float64) -> Tensor:
    """Uniform numbers in [0, 1): shape [len(seeds), count], row i a function of seeds[i] only.

    ``stream`` separates independent uses (one per weight tensor, one per epoch's data order).
    """
    seeds = seeds.to(torch.int64)
    key = mix(mix(seeds * _signed(_GOLDEN)) + _signed(((stream + 1) * _GOLDEN) % (1 << 64)))
    index = torch.arange(count, dtype=torch.int64, device=seeds.device)
    bits = mix(mix(key[:, None] + (index[None, :] + 1) * _signed(_GOLDEN)))
    # As many top bits as ``dtype`` holds exactly, so that no value rounds up to 1.
    precision = round(-math.log2(torch.finfo(dtype).eps)) + 1
    return (_shift_right(bits, 64 - precision).to(torch.float64) * 2.0**-precision).to(dtype)


def permutations(seeds: Tensor, stream: int, count: int) -> Tensor:
    """One random permutation of range(count) per seed: shape [len(seeds), count]."""
    return torch.argsort(uniform(seeds, stream, count), dim=1, stable=True)
