"""models.init: initialisation schemes keyed by each member's seed (paired seeds)."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from models import MLP, Explicit, Haykin, Perceptron, Uniform, Xavier, scheme
from models.init import Scheme

ARCHITECTURES = [[2, 2, 1], [3, 5, 4, 2], [7, 1]]


def layers_of(model: MLP) -> list[tuple[Tensor, Tensor]]:
    """(weight [K, fan_out, fan_in], bias [K, fan_out]) per layer, read from ``flat`` in the
    documented order: per layer the weight row by row (torch.nn.Linear), then the bias."""
    result = []
    offset = 0
    members = model.flat.shape[0]
    for fan_in, fan_out in pairwise(model.layers):
        weight = model.flat.detach()[:, offset : offset + fan_out * fan_in]
        offset += fan_out * fan_in
        bias = model.flat.detach()[:, offset : offset + fan_out]
        offset += fan_out
        result.append((weight.reshape(members, fan_out, fan_in), bias))
    assert offset == model.flat.shape[1]
    return result


def initialised(layers: list[int], init: Scheme, seeds: list[int], **kwargs: Any) -> MLP:
    model = MLP(layers, members=len(seeds), **kwargs)
    model.initialise(init, torch.tensor(seeds))
    return model


def assert_fills_range(values: Tensor, low: float, high: float) -> None:
    """Inside [low, high] and close to both ends (so a wrong, narrower bound fails too)."""
    width = high - low
    assert values.min().item() >= low and values.max().item() <= high
    assert values.min().item() < low + 0.05 * width
    assert values.max().item() > high - 0.05 * width


@pytest.mark.parametrize("layers", ARCHITECTURES)
def test_uniform_bounds(layers: list[int]) -> None:
    model = initialised(layers, Uniform(-0.3, 0.7), list(range(200)))
    for weight, bias in layers_of(model):
        assert_fills_range(weight, -0.3, 0.7)
        assert_fills_range(bias, -0.3, 0.7)


def test_uniform_defaults_to_plus_minus_half() -> None:
    assert Uniform() == Uniform(-0.5, 0.5)
    model = initialised([2, 1], Uniform(), list(range(300)))
    assert_fills_range(model.flat.detach(), -0.5, 0.5)


@pytest.mark.parametrize(("low", "high"), [(0.5, 0.5), (1.0, -1.0)])
def test_uniform_rejects_empty_ranges(low: float, high: float) -> None:
    with pytest.raises(ValueError, match=r"init.*low.*high"):
        Uniform(low, high)


@pytest.mark.parametrize("layers", ARCHITECTURES)
def test_haykin_bound_is_2_4_over_the_fan_in_of_each_layer(layers: list[int]) -> None:
    model = initialised(layers, Haykin(), list(range(300)))
    for fan_in, (weight, bias) in zip(layers, layers_of(model), strict=False):
        bound = 2.4 / fan_in
        assert_fills_range(weight, -bound, bound)
        assert_fills_range(bias, -bound, bound)  # the threshold is a weight too


@pytest.mark.parametrize("layers", ARCHITECTURES)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier_bounds_and_zero_biases(layers: list[int], gain: float) -> None:
    model = initialised(layers, Xavier(gain), list(range(300)))
    for fan_in, fan_out, (weight, bias) in zip(layers, layers[1:], layers_of(model),
                                               strict=False):
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        assert_fills_range(weight, -bound, bound)
        assert torch.equal(bias, torch.zeros_like(bias))


@pytest.mark.parametrize("init", [Uniform(), Haykin(), Xavier()], ids=repr)
def test_weights_biases_and_layers_draw_different_numbers(init: Scheme) -> None:
    model = initialised([3, 3, 3, 3], init, [42])
    values = [v for weight, bias in layers_of(model) for v in (weight, bias)]
    drawn = torch.cat([v.flatten() for v in values if v.abs().sum() > 0])
    assert torch.unique(drawn).numel() == drawn.numel()


@pytest.mark.parametrize("init", [Uniform(-1.0, 2.0), Haykin(), Xavier(1.5)], ids=repr)
@pytest.mark.parametrize("layers", ARCHITECTURES)
def test_member_weights_depend_only_on_the_seed(init: Scheme, layers: list[int]) -> None:
    seeds = [13, 0, 7, 2**35, -4]
    population = initialised(layers, init, seeds)
    for i, seed in enumerate(seeds):
        alone = initialised(layers, init, [seed])
        assert torch.equal(population.flat[i], alone.flat[0]), f"seed {seed}"
    smaller = initialised(layers, init, [seeds[3], seeds[1]])
    assert torch.equal(smaller.flat, population.flat[[3, 1]])
    others = initialised(layers, init, [1, 2, 3, 4, 5])
    assert not torch.equal(others.flat[:, : others.flat.shape[1] // 2],
                           population.flat[:, : population.flat.shape[1] // 2])


def test_paired_seeds_across_models_of_the_same_architecture() -> None:
    """Activations do not enter the initial weights; a Perceptron is an MLP [inputs, outputs]."""
    seeds = torch.tensor([3, 1, 4])
    sigmoid = MLP([2, 4, 1], "sigmoid", "sigmoid", members=3)
    relu = MLP([2, 4, 1], "relu", "linear", members=3)
    sigmoid.initialise(Haykin(), seeds)
    relu.initialise(Haykin(), seeds)
    assert torch.equal(sigmoid.flat, relu.flat)
    perceptron = Perceptron(2, members=3)
    step = MLP([2, 1], output="step", members=3)
    perceptron.initialise(Uniform(), seeds)
    step.initialise(Uniform(), seeds)
    assert torch.equal(perceptron.flat, step.flat)


def test_float32_weights_are_the_float64_weights_rounded() -> None:
    wide = initialised([3, 5, 2], Haykin(), [1, 2], dtype=torch.float64)
    narrow = initialised([3, 5, 2], Haykin(), [1, 2], dtype=torch.float32)
    assert narrow.flat.dtype == torch.float32
    assert torch.equal(narrow.flat, wide.flat.to(torch.float32))


XOR_LAYERS: tuple[dict[str, Any], ...] = (
    # Negnevitsky's XOR example in the torch.nn.Linear convention: row o = weights into unit o
    {"weight": [[0.5, 0.4], [0.9, 1.0]], "bias": [-0.8, 0.1]},  # w13 w23 / w14 w24; −θ3 −θ4
    {"weight": [[-1.2, 1.1]], "bias": [-0.3]},  # w35 w45; −θ5
)


def test_explicit_copies_the_given_weights_into_every_member() -> None:
    model = initialised([2, 2, 1], Explicit(XOR_LAYERS), [5, 6, 7])
    for weight, bias in layers_of(model):
        assert torch.equal(weight[0], weight[1]) and torch.equal(weight[0], weight[2])
        assert torch.equal(bias[0], bias[2])
    (w1, b1), (w2, b2) = layers_of(model)
    assert w1[0].tolist() == [[0.5, 0.4], [0.9, 1.0]] and b1[0].tolist() == [-0.8, 0.1]
    assert w2[0].tolist() == [[-1.2, 1.1]] and b2[0].tolist() == [-0.3]


def test_explicit_follows_the_torch_linear_convention() -> None:
    """The forward pass of the book's first XOR pattern (1, 1): y3 = 0.5250, y4 = 0.8808,
    y5 = 0.5097, and the same numbers from torch.nn.Linear layers holding the given lists."""
    model = initialised([2, 2, 1], Explicit(XOR_LAYERS), [0])
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    y5 = model(x)[0, 0, 0].item()
    assert round(y5, 4) == 0.5097
    linears = []
    for layer in XOR_LAYERS:
        linear = nn.Linear(len(layer["weight"][0]), len(layer["bias"]), dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(layer["weight"], dtype=torch.float64))
            linear.bias.copy_(torch.tensor(layer["bias"], dtype=torch.float64))
        linears.append(linear)
    hidden = torch.sigmoid(linears[0](x))
    assert [round(v, 4) for v in hidden[0].tolist()] == [0.5250, 0.8808]
    assert torch.sigmoid(linears[1](hidden)).item() == pytest.approx(y5, abs=1e-15)


@pytest.mark.parametrize(
    ("layers", "weights"),
    [
        pytest.param([3, 2], [{"weight": [[1, 2], [3, 4], [5, 6]], "bias": [0, 0]}],
                     id="transposed"),  # [fan_in x fan_out] instead of [fan_out x fan_in]
        pytest.param([2, 1], [{"weight": [1, 2], "bias": [0]}], id="flat-list"),
        pytest.param([2, 2], [{"weight": [[1, 2], [3, 4]], "bias": [0, 0, 0]}],
                     id="bias-too-long"),
        pytest.param([2, 2], [{"weight": [[1, 2], [3]], "bias": [0, 0]}], id="ragged"),
        pytest.param([2, 2], [{"weight": [[1, 2], [3, 4]]}], id="no-bias"),
        pytest.param([2, 2], [{"weight": [["a", 2], [3, 4]], "bias": [0, 0]}],
                     id="not-numbers"),
        pytest.param([2, 2, 1], [XOR_LAYERS[0]], id="too-few-layers"),
        pytest.param([2, 2, 1], [*XOR_LAYERS, {"weight": [[1.0]], "bias": [0.0]}],
                     id="too-many-layers"),
    ],
)
def test_explicit_rejects_wrong_shapes_naming_init_weights(
    layers: list[int], weights: list[dict[str, Any]]
) -> None:
    model = MLP(layers)
    with pytest.raises(ValueError, match=r"init\.weights"):
        model.initialise(Explicit(tuple(weights)), torch.tensor([0]))


def test_scheme_builds_each_scheme_by_name() -> None:
    assert scheme("uniform", low=-0.2, high=0.4) == Uniform(-0.2, 0.4)
    assert scheme("uniform") == Uniform(-0.5, 0.5)
    assert scheme("haykin") == Haykin()
    assert scheme("negnevitsky") == Haykin()
    assert scheme("xavier", gain=3.0) == Xavier(3.0)
    assert scheme("xavier") == Xavier(1.0)
    assert scheme("explicit", weights=list(XOR_LAYERS)) == Explicit(XOR_LAYERS)


def test_scheme_validates_its_options() -> None:
    with pytest.raises(ValueError, match=r"low.*high"):
        scheme("uniform", low=1.0, high=0.0)
    with pytest.raises(ValueError, match=r"init\.weights"):
        scheme("explicit")
    with pytest.raises(ValueError, match=r"init\.weights"):
        scheme("explicit", weights={"weight": [[1.0]], "bias": [0.0]})


@pytest.mark.parametrize("name", ["gaussian", "Haykin", "", "he"])
def test_scheme_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"Unknown init scheme {name!r}.*uniform.*xavier"):
        scheme(name)
