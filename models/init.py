"""Weight initialisation schemes for populations, in the ``torch.nn.Linear`` convention.

Every scheme fills, for each member, a layer's ``weight`` [fan_out, fan_in] and ``bias``
[fan_out] from counter-based random numbers keyed by the member's seed, the layer and the
tensor (``models.seeding``): seed s gives the same initial weights in every population and
on every device, and in every model whose architecture matches (paired seeds).
A lecture threshold θ is a bias of −θ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from models.seeding import uniform as uniform01

LayerWeights = dict[str, list[list[float]] | list[float]]
"""One layer as ``{"weight": [[...fan_in...] x fan_out], "bias": [... fan_out ...]}``."""


def _stream(layer: int, tensor: Literal["weight", "bias"]) -> int:
    return 2 * layer + (0 if tensor == "weight" else 1)


def _uniform(seeds: Tensor, layer: int, tensor: Literal["weight", "bias"], shape: Sequence[int],
             low: float, high: float, dtype: torch.dtype) -> Tensor:
    count = math.prod(shape)
    u = uniform01(seeds, _stream(layer, tensor), count, dtype=torch.float64)
    return (low + (high - low) * u).reshape(len(seeds), *shape).to(dtype)


@dataclass(frozen=True)
class Uniform:
    """Every weight and bias uniform in [low, high) (the perceptron's default is ±0.5)."""

    low: float = -0.5
    high: float = 0.5

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Invalid init: low {self.low!r} must be < high {self.high!r}")

    def layer(self, seeds: Tensor, layer: int, fan_in: int, fan_out: int,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return (_uniform(seeds, layer, "weight", (fan_out, fan_in), self.low, self.high, dtype),
                _uniform(seeds, layer, "bias", (fan_out,), self.low, self.high, dtype))


@dataclass(frozen=True)
class Haykin:
    """The lecture's scheme: weights and threshold of neuron i uniform in (−2.4/Fᵢ, +2.4/Fᵢ),
    Fᵢ = the fan-in of neuron i (Haykin; Negnevitsky calls it the same)."""

    def layer(self, seeds: Tensor, layer: int, fan_in: int, fan_out: int,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        bound = 2.4 / fan_in
        return (_uniform(seeds, layer, "weight", (fan_out, fan_in), -bound, bound, dtype),
                _uniform(seeds, layer, "bias", (fan_out,), -bound, bound, dtype))


@dataclass(frozen=True)
class Xavier:
    """Glorot & Bengio (2010) uniform: weights in ±gain·√(6/(fan_in+fan_out)), biases zero."""

    gain: float = 1.0

    def layer(self, seeds: Tensor, layer: int, fan_in: int, fan_out: int,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        weight = _uniform(seeds, layer, "weight", (fan_out, fan_in), -bound, bound, dtype)
        return weight, torch.zeros(len(seeds), fan_out, dtype=dtype, device=seeds.device)


@dataclass(frozen=True)
class Explicit:
    """The same given weights for every member (to start a worked example exactly)."""

    weights: tuple[LayerWeights, ...]

    def layer(self, seeds: Tensor, layer: int, fan_in: int, fan_out: int,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if layer >= len(self.weights):
            raise ValueError(f"Invalid init.weights: {len(self.weights)} layers given, "
                             f"the model has more (layer {layer} is missing)")
        given = self.weights[layer]
        try:
            weight = torch.tensor(given["weight"], dtype=dtype, device=seeds.device)
            bias = torch.tensor(given["bias"], dtype=dtype, device=seeds.device)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"Invalid init.weights[{layer}]: need {{weight: {fan_out} lists of "
                             f"{fan_in} numbers, bias: {fan_out} numbers}} ({error!r})") from error
        if weight.shape != (fan_out, fan_in) or bias.shape != (fan_out,):
            raise ValueError(
                f"Invalid init.weights[{layer}]: weight must be {fan_out}x{fan_in} "
                f"(fan_out x fan_in) and bias of length {fan_out}; got weight "
                f"{tuple(weight.shape)}, bias {tuple(bias.shape)}")
        members = len(seeds)
        return weight.expand(members, -1, -1).clone(), bias.expand(members, -1).clone()


Scheme = Uniform | Haykin | Xavier | Explicit

SCHEMES = ("uniform", "haykin", "negnevitsky", "xavier", "explicit")


def scheme(name: str, **options: object) -> Scheme:
    """Build a scheme by name: ``uniform(low, high)``, ``haykin`` / ``negnevitsky`` (±2.4/Fᵢ),
    ``xavier(gain)``, ``explicit(weights)``."""
    if name == "uniform":
        return Uniform(**options)  # type: ignore[arg-type]
    if name in ("haykin", "negnevitsky"):
        return Haykin()
    if name == "xavier":
        return Xavier(**options)  # type: ignore[arg-type]
    if name == "explicit":
        weights = options.get("weights")
        if not isinstance(weights, list | tuple):
            raise ValueError("Invalid init.weights: a list of {weight, bias} layers is required")
        return Explicit(tuple(weights))
    raise ValueError(f"Unknown init scheme {name!r} (allowed: {', '.join(SCHEMES)})")
