"""models.mlp (and models.unrolled): the MLP population against plain torch layers and autograd,
and the Perceptron's hard limiter against Rosenblatt's rule worked by hand."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from models import MLP, Explicit, Perceptron, unrolled
from models.activations import step

ARCHITECTURES = [[2, 2, 1], [4, 4, 1], [3, 5, 4, 2]]
HIDDEN = ["sigmoid", "tanh", "relu"]
OUTPUTS = ["sigmoid", "linear", "tanh"]
MEMBERS = 4
PATTERNS = 6

TORCH_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


def reference_networks(layers: list[int], activation: str, output: str,
                       seed: int) -> list[nn.Sequential]:
    """MEMBERS plain torch networks (nn.Linear + activations) with their own random weights."""
    generator = torch.Generator().manual_seed(seed)
    networks = []
    for _ in range(MEMBERS):
        modules: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(pairwise(layers)):
            linear = nn.Linear(fan_in, fan_out, dtype=torch.float64)
            with torch.no_grad():  # wider than torch's default, so that outputs saturate a bit
                linear.weight.uniform_(-1.5, 1.5, generator=generator)
                linear.bias.uniform_(-1.0, 1.0, generator=generator)
            last = index == len(layers) - 2
            modules += [linear, TORCH_ACTIVATIONS[output if last else activation]()]
        networks.append(nn.Sequential(*modules))
    return networks


def population_of(networks: list[nn.Sequential], layers: list[int], activation: str,
                  output: str) -> MLP:
    """The MLP whose member i holds network i's weights, written into ``flat`` in the
    documented layout: per layer the nn.Linear weight row by row, then its bias."""
    model = MLP(layers, activation, output, members=len(networks))
    rows = [torch.cat([p.detach().flatten() for linear in network
                       if isinstance(linear, nn.Linear) for p in (linear.weight, linear.bias)])
            for network in networks]
    with torch.no_grad():
        model.flat.copy_(torch.stack(rows))
    return model


def random_inputs(layers: list[int], *, per_member: bool, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (MEMBERS, PATTERNS, layers[0]) if per_member else (PATTERNS, layers[0])
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per-member"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("layers", ARCHITECTURES, ids=str)
def test_forward_equals_plain_torch_layers(layers: list[int], activation: str, output: str,
                                           per_member: bool) -> None:
    networks = reference_networks(layers, activation, output, seed=len(layers))
    model = population_of(networks, layers, activation, output)
    inputs = random_inputs(layers, per_member=per_member)
    outputs = model(inputs)
    assert outputs.shape == (MEMBERS, PATTERNS, layers[-1])
    assert outputs.dtype == torch.float64
    for i, network in enumerate(networks):
        expected = network(inputs[i] if per_member else inputs)
        torch.testing.assert_close(outputs[i], expected, rtol=0, atol=1e-14)


def test_flat_layout_by_hand() -> None:
    """2-2-1: flat = [w00 w01 w10 w11 b0 b1 | v00 v01 c0] (weight[o][i] = from input i to o)."""
    model = MLP([2, 2, 1], "tanh", "linear")
    with torch.no_grad():
        model.flat.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.5, -0.5, 10.0, 100.0, 7.0]]))
    x1, x2 = 0.2, -0.3
    h0 = torch.tanh(torch.tensor(1.0 * x1 + 2.0 * x2 + 0.5, dtype=torch.float64))
    h1 = torch.tanh(torch.tensor(3.0 * x1 + 4.0 * x2 - 0.5, dtype=torch.float64))
    expected = 10.0 * h0 + 100.0 * h1 + 7.0
    got = model(torch.tensor([[x1, x2]], dtype=torch.float64))
    assert got.item() == pytest.approx(expected.item(), abs=1e-13)
    (weight, bias), (weight2, bias2) = model.unflatten(model.flat)
    assert weight[0].tolist() == [[1.0, 2.0], [3.0, 4.0]] and bias[0].tolist() == [0.5, -0.5]
    assert weight2[0].tolist() == [[10.0, 100.0]] and bias2[0].tolist() == [7.0]


def test_members_do_not_mix() -> None:
    """Changing member 1's weights changes member 1's outputs only."""
    networks = reference_networks([3, 5, 4, 2], "tanh", "sigmoid", seed=9)
    model = population_of(networks, [3, 5, 4, 2], "tanh", "sigmoid")
    inputs = random_inputs([3, 5, 4, 2], per_member=False)
    before = model(inputs).detach()
    with torch.no_grad():
        model.flat[1] += 0.25
    after = model(inputs).detach()
    assert torch.equal(before[[0, 2, 3]], after[[0, 2, 3]])
    assert not torch.equal(before[1], after[1])


# Losses summed over patterns and outputs (one value per member) and ∂loss/∂outputs.
Loss = Callable[[Tensor, Tensor], Tensor]
OutputGradient = Callable[[Tensor, Tensor], Tensor]


def sse(outputs: Tensor, targets: Tensor) -> Tensor:
    return ((targets - outputs) ** 2).sum(dim=(-2, -1))


def sse_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    return -2.0 * (targets - outputs)


def half_sse(outputs: Tensor, targets: Tensor) -> Tensor:
    return 0.5 * ((targets - outputs) ** 2).sum(dim=(-2, -1))


def half_sse_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    return outputs - targets


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return -(targets * torch.log_softmax(outputs, dim=-1)).sum(dim=(-2, -1))


def cross_entropy_gradient(outputs: Tensor, targets: Tensor) -> Tensor:
    """∂/∂y of −Σ t·log softmax(y) = softmax(y)·Σt − t."""
    return torch.log_softmax(outputs, dim=-1).exp() * targets.sum(-1, keepdim=True) - targets


LOSSES: dict[str, tuple[Loss, OutputGradient]] = {
    "sse": (sse, sse_gradient),
    "half_sse": (half_sse, half_sse_gradient),
    "cross_entropy": (cross_entropy, cross_entropy_gradient),
}


def targets_for(layers: list[int], loss: str) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    if loss == "cross_entropy":
        classes = torch.randint(layers[-1], (PATTERNS,), generator=generator)
        return nn.functional.one_hot(classes, layers[-1]).to(torch.float64)
    return torch.rand(PATTERNS, layers[-1], generator=generator, dtype=torch.float64)


def autograd_gradient(model: MLP, inputs: Tensor, loss: Loss, targets: Tensor) -> Tensor:
    """∂(Σ members' losses)/∂flat by autograd: row i is member i's own gradient."""
    model.flat.grad = None
    loss(model(inputs), targets).sum().backward()
    assert model.flat.grad is not None
    gradient = model.flat.grad.clone()
    model.flat.grad = None
    return gradient


CASES = [(layers, activation, output, loss)
         for layers in ARCHITECTURES for activation in HIDDEN for output in OUTPUTS
         for loss in ("sse", "half_sse")] + [
    (layers, activation, "linear", "cross_entropy")
    for layers in ([4, 4, 3], [3, 5, 4, 2]) for activation in HIDDEN]


@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per-member"])
@pytest.mark.parametrize(("layers", "activation", "output", "loss"), CASES, ids=str)
def test_hand_written_gradient_equals_autograd(layers: list[int], activation: str, output: str,
                                               loss: str, per_member: bool) -> None:
    networks = reference_networks(layers, activation, output, seed=3)
    model = population_of(networks, layers, activation, output)
    inputs = random_inputs(layers, per_member=per_member, seed=2)
    targets = targets_for(layers, loss)
    loss_function, output_gradient = LOSSES[loss]
    outputs, gradient = model.gradient(inputs, lambda y: output_gradient(y, targets))
    torch.testing.assert_close(outputs, model(inputs).detach(), rtol=0, atol=1e-15)
    expected = autograd_gradient(model, inputs, loss_function, targets)
    assert gradient.shape == (MEMBERS, model.n_weights)
    assert expected.abs().max() > 1e-3  # a real gradient, not zeros on both sides
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-12)


def test_gradient_of_each_member_is_its_own() -> None:
    """Member i's hand-written gradient equals the plain network i's autograd gradient."""
    layers = [3, 5, 4, 2]
    networks = reference_networks(layers, "sigmoid", "sigmoid", seed=5)
    model = population_of(networks, layers, "sigmoid", "sigmoid")
    inputs = random_inputs(layers, per_member=True)
    targets = targets_for(layers, "sse")
    _, gradient = model.gradient(inputs, lambda y: sse_gradient(y, targets))
    for i, network in enumerate(networks):
        network.zero_grad()
        sse(network(inputs[i]), targets).backward()
        expected = torch.cat([p.grad.flatten() for p in network.parameters()
                              if p.grad is not None])
        torch.testing.assert_close(gradient[i], expected, rtol=0, atol=1e-12)


UNROLLED_CASES = [(layers, activation, output)
                  for layers in ([2, 2, 1], [4, 4, 1], [3, 5, 4, 2])
                  for activation in HIDDEN for output in OUTPUTS]


@pytest.mark.parametrize(("layers", "activation", "output"), UNROLLED_CASES, ids=str)
def test_unrolled_gradient_equals_mlp_gradient(layers: list[int], activation: str,
                                               output: str) -> None:
    networks = reference_networks(layers, activation, output, seed=4)
    model = population_of(networks, layers, activation, output)
    inputs = random_inputs(layers, per_member=False, seed=6)[:4]
    targets = targets_for(layers, "sse")[:4]
    assert unrolled.suits(model, inputs)

    def output_gradient(y: Tensor) -> Tensor:
        return sse_gradient(y, targets)

    expected_outputs, expected = model.gradient(inputs, output_gradient)
    with torch.no_grad():
        outputs, gradient = unrolled.gradient(model, model.flat, inputs, output_gradient)
    torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-12)


def test_unrolled_gradient_of_the_perceptron() -> None:
    model = Perceptron(3, 2, members=3)
    model.initialise(Explicit(({"weight": [[0.5, -1.0, 0.25], [1.0, 1.0, -2.0]],
                                "bias": [0.1, -0.2]},)), torch.tensor([0, 1, 2]))
    with torch.no_grad():
        model.flat[1] *= -1.0
    inputs = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]],
                          dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)

    def output_gradient(y: Tensor) -> Tensor:
        return y - targets

    expected_outputs, expected = model.gradient(inputs, output_gradient)
    outputs, gradient = unrolled.gradient(model, model.flat.detach(), inputs, output_gradient)
    assert torch.equal(outputs, expected_outputs)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-12)


def test_unrolled_suits_only_small_networks_with_shared_inputs() -> None:
    xor = MLP([2, 2, 1], members=3)  # 9 weights
    assert unrolled.suits(xor, torch.zeros(4, 2))
    assert not unrolled.suits(xor, torch.zeros(3, 4, 2))  # per-member inputs
    assert not unrolled.suits(MLP([64, 64, 1]), torch.zeros(4, 64))
    assert not unrolled.suits(MLP([2, 2, 1]), torch.zeros(1000, 2))  # many patterns
    single = MLP([1, 1])  # 2 weights: patterns x weights against the limit
    assert unrolled.suits(single, torch.zeros(unrolled.MAX_TERMS // 2, 1))
    assert not unrolled.suits(single, torch.zeros(unrolled.MAX_TERMS // 2 + 1, 1))


def test_layer_weights_round_trip() -> None:
    layers = [3, 5, 4, 2]
    networks = reference_networks(layers, "tanh", "linear", seed=8)
    model = population_of(networks, layers, "tanh", "linear")
    for i, network in enumerate(networks):
        weights = model.layer_weights(model.flat[i])
        linears = [m for m in network if isinstance(m, nn.Linear)]
        assert len(weights) == len(linears)
        for given, linear in zip(weights, linears, strict=True):
            assert given["weight"] == linear.weight.tolist()
            assert given["bias"] == linear.bias.tolist()
        copy = MLP(layers, "tanh", "linear", members=2)
        copy.initialise(Explicit(tuple(weights)), torch.tensor([0, 1]))
        assert torch.equal(copy.flat[0], model.flat[i]) and torch.equal(copy.flat[1], model.flat[i])


def test_bias_mask_by_hand() -> None:
    assert MLP([2, 2, 1]).bias_mask().tolist() == [False] * 4 + [True] * 2 + [False] * 2 + [True]
    mask = MLP([3, 2, 2]).bias_mask()
    expected = [False] * 6 + [True] * 2 + [False] * 4 + [True] * 2
    assert mask.tolist() == expected and mask.dtype == torch.bool


@pytest.mark.parametrize("layers", [[], [2], [2, 0, 1], [2, -1], [2, 2.5, 1], [True, 1],
                                    [2, "3", 1]], ids=str)
def test_invalid_layers_name_the_field(layers: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"model\.layers"):
        MLP(layers)


@pytest.mark.parametrize("activation", ["step", "linear", "softmax", "Sigmoid"])
def test_invalid_activation_names_the_field(activation: str) -> None:
    with pytest.raises(ValueError, match=rf"model\.activation: {activation!r}.*sigmoid"):
        MLP([2, 2, 1], activation)


@pytest.mark.parametrize("output", ["relu", "softmax", ""])
def test_invalid_output_names_the_field(output: str) -> None:
    with pytest.raises(ValueError, match=rf"model\.output: {output!r}.*linear"):
        MLP([2, 2, 1], output=output)


def test_invalid_members_and_seed_count() -> None:
    with pytest.raises(ValueError, match=r"members: 0"):
        MLP([2, 1], members=0)
    with pytest.raises(ValueError, match=r"one seed per member \(3\)"):
        MLP([2, 1], members=3).initialise(Explicit(()), torch.tensor([1, 2]))


def test_step_is_one_at_and_above_zero() -> None:
    net = torch.tensor([-3.0, -1e-300, -0.0, 0.0, 5e-324, 2.0], dtype=torch.float64)
    assert step(net).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert step(net.float()).dtype == torch.float32


def perceptron(weights: list[list[float]], bias: list[float], members: int = 1,
               **kwargs: Any) -> Perceptron:
    model = Perceptron(len(weights[0]), len(weights), members=members, **kwargs)
    model.initialise(Explicit(({"weight": weights, "bias": bias},)), torch.arange(members))
    return model


def test_perceptron_net_exactly_zero_gives_one() -> None:
    model = perceptron([[0.5, -0.5]], [0.0])
    inputs = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    assert model(inputs)[0, :, 0].tolist() == [1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("x", "target", "expected"),
    [
        # w = (0.25, −0.5), θ = 0.5 (bias −0.5), α = 0.1.
        # X = 0.5·0.25 + 2·(−0.5) − 0.5 = −1.375 → Y = 0, e = 1:
        # w1 = 0.25 + 0.1·0.5·1, w2 = −0.5 + 0.1·2·1, θ = 0.5 − 0.1·1 → bias −0.4
        ((0.5, 2.0), 1.0, (0.30, -0.30, -0.40)),
        # X = 3·0.25 + 0.5·(−0.5) − 0.5 = 0 → Y = 1, e = −1:
        # w1 = 0.25 − 0.1·3, w2 = −0.5 − 0.1·0.5, θ = 0.5 + 0.1 → bias −0.6
        ((3.0, 0.5), 0.0, (-0.05, -0.55, -0.60)),
        # X = −1.5 → Y = 0 = target: e = 0, nothing changes
        ((0.0, 2.0), 0.0, (0.25, -0.5, -0.5)),
    ],
)
def test_gradient_descent_on_half_squared_error_is_rosenblatts_rule(
    x: tuple[float, float], target: float, expected: tuple[float, float, float]
) -> None:
    alpha = 0.1
    inputs = torch.tensor([x], dtype=torch.float64)
    targets = torch.tensor([[target]], dtype=torch.float64)
    model = perceptron([[0.25, -0.5]], [-0.5])
    (0.5 * (targets - model(inputs)) ** 2).sum().backward()
    assert model.flat.grad is not None
    by_autograd = model.flat.detach() - alpha * model.flat.grad
    torch.testing.assert_close(by_autograd[0], torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-15)
    _, gradient = model.gradient(inputs, lambda y: y - targets)
    torch.testing.assert_close(gradient, model.flat.grad, rtol=0, atol=0)


def test_perceptron_population_members_follow_their_own_errors() -> None:
    """Three members, one pattern each: Δw = α·x·e and Δbias = α·e member by member."""
    model = perceptron([[0.2, 0.2]], [-0.3], members=3)
    inputs = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]], [[1.0, 0.0]]], dtype=torch.float64)
    targets = torch.tensor([[[0.0]], [[1.0]], [[0.0]]], dtype=torch.float64)
    # nets: 0.1 → Y=1, e=−1;  −0.3 → Y=0, e=1;  −0.1 → Y=0, e=0
    _, gradient = model.gradient(inputs, lambda y: y - targets)
    assert gradient.tolist() == [[1.0, 1.0, 1.0], [-0.0, -0.0, -1.0], [0.0, 0.0, 0.0]]


def test_frozen_mask_is_the_threshold_when_held_fixed() -> None:
    assert Perceptron(3, 2).frozen_mask() is None
    assert Perceptron(3, 2, train_threshold=True).frozen_mask() is None
    fixed = Perceptron(3, 2, train_threshold=False).frozen_mask()
    assert fixed is not None
    assert fixed.tolist() == [False] * 6 + [True, True]
    single = Perceptron(2, train_threshold=False).frozen_mask()
    assert single is not None and single.tolist() == [False, False, True]
