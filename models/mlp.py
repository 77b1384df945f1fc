"""A population of multilayer perceptrons stored as one flat parameter [members, weights]."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from models.activations import (
    ACTIVATIONS,
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    derivative_from_output,
)
from models.init import Explicit, LayerWeights, Scheme


class MLP(nn.Module):
    """K independent fully connected networks ``layers[0] → … → layers[-1]`` trained as one.

    All weights of all members live in one parameter ``flat`` of shape [members, n_weights]
    (so an optimizer steps the whole population with a handful of tensor operations); each
    layer's ``weight`` [members, fan_out, fan_in] and ``bias`` [members, fan_out] are views of
    it, in the ``torch.nn.Linear`` convention. ``forward`` takes patterns shared by all
    members [patterns, inputs] or one set per member [members, patterns, inputs] and returns
    [members, patterns, outputs]. Member i never mixes with member j.
    """

    def __init__(self, layers: Sequence[int], activation: str = "sigmoid",
                 output: str = "sigmoid", *, members: int = 1,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        if len(layers) < 2 or any(isinstance(n, bool) or int(n) != n or n < 1 for n in layers):
            raise ValueError(f"Invalid model.layers: {list(layers)!r} (allowed: at least two "
                             "positive integers, inputs first and outputs last)")
        if activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"Invalid model.activation: {activation!r} "
                             f"(allowed: {', '.join(HIDDEN_ACTIVATIONS)})")
        if output not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"Invalid model.output: {output!r} "
                             f"(allowed: {', '.join(OUTPUT_ACTIVATIONS)})")
        if members < 1:
            raise ValueError(f"Invalid members: {members!r} (allowed: an integer >= 1)")
        self.layers = tuple(int(n) for n in layers)
        self.activation = activation
        self.output = output
        self.sizes = [(fan_out, fan_in) for fan_in, fan_out in zip(self.layers, self.layers[1:],
                                                                  strict=False)]
        n_weights = sum(fan_out * fan_in + fan_out for fan_out, fan_in in self.sizes)
        self.flat = nn.Parameter(torch.zeros(members, n_weights, dtype=dtype, device=device))

    @property
    def members(self) -> int:
        return self.flat.shape[0]

    @property
    def n_weights(self) -> int:
        return self.flat.shape[1]

    def unflatten(self, flat: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Views (weight [K, fan_out, fan_in], bias [K, fan_out]) of each layer of ``flat``."""
        views = []
        offset = 0
        members = flat.shape[0]
        for fan_out, fan_in in self.sizes:
            weight = flat[:, offset : offset + fan_out * fan_in].view(members, fan_out, fan_in)
            offset += fan_out * fan_in
            bias = flat[:, offset : offset + fan_out]
            offset += fan_out
            views.append((weight, bias))
        return views

    def bias_mask(self) -> Tensor:
        """True at the flat positions that hold biases (lecture thresholds, θ = −bias)."""
        mask = torch.zeros(self.n_weights, dtype=torch.bool, device=self.flat.device)
        offset = 0
        for fan_out, fan_in in self.sizes:
            offset += fan_out * fan_in
            mask[offset : offset + fan_out] = True
            offset += fan_out
        return mask

    def forward(self, inputs: Tensor) -> Tensor:
        hidden = ACTIVATIONS[self.activation]
        last = len(self.sizes) - 1
        signal = inputs
        for index, (weight, bias) in enumerate(self.unflatten(self.flat)):
            net = torch.matmul(signal, weight.transpose(1, 2)) + bias.unsqueeze(1)
            signal = ACTIVATIONS[self.output](net) if index == last else hidden(net)
        return signal

    @torch.no_grad()
    def gradient(self, inputs: Tensor,
                 output_gradient: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """Outputs and ∂loss/∂flat [members, n_weights] by hand-written back-propagation
        (the delta rule: δ = ∂loss/∂y · f'(net); ∂loss/∂W = δᵀ·input; δ_below = δ·W), given
        ``output_gradient`` = ∂loss/∂outputs. The same numbers as autograd, without its
        per-operation overhead.

        Signals are kept units-major, [members, units, patterns], so that a layer fed by
        patterns shared by all members is one matrix product for the whole population
        ([members·units, inputs] × [inputs, patterns]) instead of a batch of tiny ones.
        """
        layers = self.unflatten(self.flat)
        last = len(layers) - 1
        names = [self.activation] * last + [self.output]
        members = self.flat.shape[0]
        shared = inputs.dim() == 2
        signals = [inputs.t() if shared else inputs.transpose(1, 2)]  # [(K,) inputs, patterns]
        for index, (weight, bias) in enumerate(layers):
            fan_out, fan_in = self.sizes[index]
            below = signals[-1]
            if below.dim() == 2:
                net = torch.addmm(bias.reshape(members * fan_out, 1),
                                  weight.reshape(members * fan_out, fan_in), below)
                net = net.view(members, fan_out, -1)
            else:
                net = torch.baddbmm(bias.unsqueeze(2), weight, below)
            signals.append(ACTIVATIONS[names[index]](net))
        outputs = signals[-1].transpose(1, 2)
        upstream = output_gradient(outputs).transpose(1, 2)  # [K, units, patterns]
        pieces: list[Tensor] = []
        for index in range(last, -1, -1):
            fan_out, fan_in = self.sizes[index]
            slope = derivative_from_output(names[index], signals[index + 1])
            delta = upstream if slope is None else upstream * slope
            below = signals[index]
            if below.dim() == 2:
                weight_gradient = torch.mm(delta.reshape(members * fan_out, -1), below.t())
            else:
                weight_gradient = torch.bmm(delta, below.transpose(1, 2))
            ones = torch.ones(delta.shape[-1], dtype=delta.dtype, device=delta.device)
            bias_gradient = torch.matmul(delta, ones)  # Σ over patterns
            pieces = [weight_gradient.reshape(members, -1), bias_gradient, *pieces]
            if index > 0:
                upstream = torch.bmm(layers[index][0].transpose(1, 2), delta)
        return outputs, torch.cat(pieces, dim=1)

    @torch.no_grad()
    def initialise(self, scheme: Scheme, seeds: Tensor) -> None:
        """Fill member i's weights from ``scheme`` keyed by ``seeds[i]``."""
        if seeds.shape != (self.members,):
            raise ValueError(f"need one seed per member ({self.members}), got {tuple(seeds.shape)}")
        if isinstance(scheme, Explicit) and len(scheme.weights) != len(self.sizes):
            raise ValueError(f"Invalid init.weights: {len(scheme.weights)} layers given, the "
                             f"model {list(self.layers)} has {len(self.sizes)}")
        seeds = seeds.to(self.flat.device)
        for index, (weight, bias) in enumerate(self.unflatten(self.flat.data)):
            fan_out, fan_in = self.sizes[index]
            new_weight, new_bias = scheme.layer(seeds, index, fan_in, fan_out, self.flat.dtype)
            weight.copy_(new_weight)
            bias.copy_(new_bias)

    def layer_weights(self, flat_member: Tensor) -> list[LayerWeights]:
        """One member's weights [n_weights] as ``[{"weight": [[...]], "bias": [...]}, ...]``."""
        views = self.unflatten(flat_member.detach().reshape(1, -1).cpu())
        return [{"weight": weight[0].tolist(), "bias": bias[0].tolist()} for weight, bias in views]


class Perceptron(MLP):
    """Rosenblatt's perceptron: one layer of hard limiters, Y = step(Σ xᵢwᵢ − θ), as a
    population. The threshold θ is a bias of −θ; ``train_threshold=False`` holds it fixed."""

    def __init__(self, inputs: int, outputs: int = 1, *, train_threshold: bool = True,
                 members: int = 1, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__([inputs, outputs], activation="sigmoid", output="step", members=members,
                         dtype=dtype, device=device)
        self.train_threshold = train_threshold

    def frozen_mask(self) -> Tensor | None:
        """Flat positions the optimizer must not change (the threshold, when held fixed)."""
        return None if self.train_threshold else self.bias_mask()
