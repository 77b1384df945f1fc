"""The per-member arithmetic in optimizers._population rounds exactly as torch's float ops."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from optimizers import Adam, PerceptronRule, RMSProp, SteepestDescent, _population

MEMBERS = 5

Op = Callable[[Tensor, Tensor, Tensor, _population.Hyperparameter], Tensor]
OPS: dict[str, Op] = {
    "add_": lambda target, a, b, value: _population.add_(target, a, alpha=value),
    "addcmul_": lambda target, a, b, value: _population.addcmul_(target, a, b, value=value),
    "addcdiv_": lambda target, a, b, value: _population.addcdiv_(target, a, b, value=value),
}


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("shape", [(1,), (3,), (7, 9), (33,)])
def test_per_member_values_round_like_the_float_op(
    name: str, shape: tuple[int, ...], device: str
) -> None:
    """Member i of the per-member op equals torch's float op with member i's value, bit for bit.

    torch's CPU and CUDA kernels associate addcmul and addcdiv differently, so this runs on
    every device present.
    """
    generator = torch.Generator().manual_seed(len(shape) * 100 + shape[0])
    target, a, b = (
        torch.randn(MEMBERS, *shape, generator=generator, dtype=torch.float64).to(device)
        for _ in range(3)
    )
    b = b.abs() + 0.1
    values = (torch.rand(MEMBERS, generator=generator, dtype=torch.float64) * 2 - 1).to(device)
    together = OPS[name](target.clone(), a, b, values)
    for i in range(MEMBERS):
        alone = OPS[name](target[i].clone(), a[i], b[i], values[i].item())
        assert torch.equal(together[i], alone), f"member {i}"


def test_elementwise_uses_python_float_arithmetic_per_member() -> None:
    """(1 − β^t)^0.5 member by member is Python's libm result, which tensor pow can miss."""
    betas = torch.linspace(0.5, 0.9999, 20, dtype=torch.float64)
    for t in (1, 2, 3, 7, 100, 1000):
        got = _population.elementwise(lambda b, t_: (1 - b**t_) ** 0.5, betas, t)
        expected = [(1 - b**t) ** 0.5 for b in betas.tolist()]
        assert isinstance(got, Tensor) and got.tolist() == expected
    assert _population.elementwise(lambda a, b: a / b, 1.0, 4.0) == 0.25


def test_per_member_values_are_kept_in_float64() -> None:
    value = _population.as_hyperparameter("lr", torch.tensor([0.5, 0.25]), 2)
    assert isinstance(value, Tensor) and value.dtype == torch.float64


@pytest.mark.parametrize("optimizer", [SteepestDescent, PerceptronRule, RMSProp, Adam])
def test_every_parameter_needs_the_member_dimension(optimizer: type) -> None:
    params = [torch.zeros(3, 2, requires_grad=True), torch.zeros(2, 3, requires_grad=True)]
    message = (
        "Invalid params: with members=3 every parameter needs a leading member "
        "dimension of size 3; got shape (2, 3)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        optimizer(params, lr=0.1, members=3)
