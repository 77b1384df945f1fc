"""optimizers.get(name) and optimizers.names()."""

from __future__ import annotations

import re

import pytest

import optimizers


def test_names_are_the_canonical_names_sorted() -> None:
    assert optimizers.names() == [
        "adam", "grprop", "perceptron_rule", "rmsprop", "rprop", "steepest_descent",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("perceptron_rule", optimizers.PerceptronRule),
        ("steepest_descent", optimizers.SteepestDescent),
        ("sgd", optimizers.SteepestDescent),
        ("rprop", optimizers.Rprop),
        ("grprop", optimizers.GRprop),
        ("rmsprop", optimizers.RMSProp),
        ("adam", optimizers.Adam),
    ],
)
def test_get_returns_the_class(name: str, expected: type) -> None:
    assert optimizers.get(name) is expected


def test_an_unknown_name_lists_the_allowed_ones() -> None:
    message = (
        "Unknown optimizer 'adamw' (allowed: adam, grprop, perceptron_rule, rmsprop, "
        "rprop, steepest_descent)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        optimizers.get("adamw")
