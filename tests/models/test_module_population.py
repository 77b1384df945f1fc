"""models.module_population: a user's own torch module as a population, member i built under
torch.manual_seed(seed_i)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from models import ModulePopulation
from models.module_population import load_factory
from tests.models import factories

SEEDS = [7, 0, 123, 7_000_001]


def built_by_hand(seed: int, **kwargs: int) -> nn.Module:
    """The module a user gets by seeding torch and calling the factory (float64)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factories.tiny_mlp(**kwargs).double()


def population(seeds: list[int], hidden: int = 4) -> ModulePopulation:
    return ModulePopulation(factories.tiny_mlp, {"hidden": hidden}, torch.tensor(seeds))


def test_member_i_holds_the_parameters_of_seed_i() -> None:
    model = population(SEEDS)
    assert model.members == len(SEEDS)
    assert model.flat.shape == (len(SEEDS), 2 * 4 + 4 + 4 + 1)
    assert model.flat.dtype == torch.float64
    for i, seed in enumerate(SEEDS):
        expected = parameters_to_vector(built_by_hand(seed, hidden=4).parameters())
        assert torch.equal(model.flat[i].detach(), expected), f"seed {seed}"


def test_member_i_does_not_depend_on_population_size_or_order() -> None:
    full = population(SEEDS)
    part = population([SEEDS[2], SEEDS[0]])
    assert torch.equal(part.flat, full.flat[[2, 0]])


@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per-member"])
def test_forward_equals_the_hand_built_modules(per_member: bool) -> None:
    model = population(SEEDS)
    generator = torch.Generator().manual_seed(0)
    shape = (len(SEEDS), 5, 2) if per_member else (5, 2)
    inputs = torch.randn(*shape, generator=generator, dtype=torch.float64)
    outputs = model(inputs)
    assert outputs.shape == (len(SEEDS), 5, 1)
    for i, seed in enumerate(SEEDS):
        expected = built_by_hand(seed, hidden=4)(inputs[i] if per_member else inputs)
        torch.testing.assert_close(outputs[i], expected, rtol=0, atol=1e-14)


def test_gradient_of_member_i_is_the_hand_built_modules_gradient() -> None:
    model = population(SEEDS)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(len(SEEDS), 6, 2, generator=generator, dtype=torch.float64)
    targets = torch.randn(len(SEEDS), 6, 1, generator=generator, dtype=torch.float64)
    losses = ((model(inputs) - targets) ** 2).sum(dim=(1, 2))
    losses.sum().backward()
    assert model.flat.grad is not None
    for i, seed in enumerate(SEEDS):
        module = built_by_hand(seed, hidden=4)
        ((module(inputs[i]) - targets[i]) ** 2).sum().backward()
        expected = parameters_to_vector([p.grad for p in module.parameters()
                                         if p.grad is not None])
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(model.flat.grad[i], expected, rtol=0, atol=1e-12)


def test_updating_flat_updates_the_forward_pass() -> None:
    """The forward pass reads ``flat`` (not a copy): zeroing member 1 leaves only its output
    at zero."""
    model = population(SEEDS)
    inputs = torch.ones(3, 2, dtype=torch.float64)
    before = model(inputs).detach()
    with torch.no_grad():
        model.flat[1].zero_()
    after = model(inputs).detach()
    assert torch.equal(after[1], torch.zeros(3, 1, dtype=torch.float64))
    assert torch.equal(after[[0, 2, 3]], before[[0, 2, 3]])


def test_float32_population() -> None:
    model = ModulePopulation(factories.tiny_mlp, {}, torch.tensor([3]), dtype=torch.float32)
    assert model.flat.dtype == torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        expected = parameters_to_vector(factories.tiny_mlp().parameters())
    assert torch.equal(model.flat[0].detach(), expected)


def test_layer_weights_by_parameter_name() -> None:
    model = population(SEEDS)
    weights = model.layer_weights(model.flat[2])
    module = built_by_hand(SEEDS[2], hidden=4)
    assert list(weights) == [name for name, _ in module.named_parameters()]
    for name, parameter in module.named_parameters():
        assert weights[name] == parameter.tolist()


@pytest.mark.parametrize("factory", [factories.with_batch_norm, factories.WithBuffer],
                         ids=["batch-norm", "buffer"])
def test_modules_with_buffers_are_rejected(factory: type[nn.Module]) -> None:
    with pytest.raises(ValueError, match=r"model\.path.*buffers"):
        ModulePopulation(factory, {}, torch.tensor([0, 1]))


def test_a_factory_must_return_a_module() -> None:
    with pytest.raises(ValueError, match=r"model\.path.*torch\.nn\.Module"):
        ModulePopulation(factories.not_a_module, {}, torch.tensor([0]))  # type: ignore[arg-type]


def test_load_factory_imports_the_named_factory() -> None:
    assert load_factory("tests.models.factories:tiny_mlp") is factories.tiny_mlp
    assert load_factory("tests.models.factories:WithBuffer") is factories.WithBuffer


@pytest.mark.parametrize("path", ["tests.models.factories", "tests.models.factories.tiny_mlp",
                                  "a:b:c", ":tiny_mlp", "tests.models.factories:",
                                  "1tests:f", "tests models:f", "tests/models/factories.py:f",
                                  "tests.models.factories:tiny-mlp", ""])
def test_load_factory_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid model\.path.*package\.module:factory"):
        load_factory(path)


@pytest.mark.parametrize("path", ["no_such_package_xyz:factory",
                                  "tests.models.no_such_module:factory",
                                  "tests.models.factories:no_such_factory"])
def test_load_factory_rejects_unimportable_paths(path: str) -> None:
    with pytest.raises(ValueError, match=rf"Invalid model\.path: cannot import {path!r}"):
        load_factory(path)


def test_load_factory_rejects_what_is_not_callable() -> None:
    with pytest.raises(ValueError, match=r"Invalid model\.path: 'math:pi' is not callable"):
        load_factory("math:pi")
