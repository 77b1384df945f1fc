"""Task names: parse a user's name into a task, list the names a user may pass."""

import re
from collections.abc import Callable

from ._dataset import Dataset
from ._functions import FunctionTask, quadratic, rosenbrock
from ._logic import (
    ENCODER_SIZES,
    PARITY_BITS,
    encoder,
    logical_and,
    logical_or,
    logical_xor,
    parity,
)
from ._sklearn import breast_cancer, digits, iris
from ._spirals import two_spirals

Task = Dataset | FunctionTask

_FIXED: dict[str, Callable[[], Task]] = {
    "and": logical_and,
    "or": logical_or,
    "xor": logical_xor,
    "spirals": two_spirals,
    "iris": iris,
    "digits": digits,
    "breast-cancer": breast_cancer,
    "quadratic": quadratic,
    "rosenbrock": rosenbrock,
}
_PARITY = "parity-N"
_ENCODER = "encoder-N-M-N"
_PATTERNS = {
    "parity": re.compile(r"parity-(\d+)", re.ASCII),
    "encoder": re.compile(r"encoder-(\d+)-(\d+)-(\d+)", re.ASCII),
}
_FORMATS = {
    "parity": f"expected {_PARITY} with N in {PARITY_BITS.start}..{PARITY_BITS.stop - 1}",
    "encoder": f"expected {_ENCODER} with N in {ENCODER_SIZES.start}..{ENCODER_SIZES.stop - 1} "
               "and M in 1..N",
}


def names() -> list[str]:
    """The task names a user may pass, sorted; parametrised ones shown as patterns."""
    return sorted([*_FIXED, _PARITY, _ENCODER])


def get(name: str) -> Task:
    """The task called ``name``: a fixed name, ``parity-N`` or ``encoder-N-M-N``.

    Data sets are fresh copies: mutating one does not affect later calls.
    """
    if name in _FIXED:
        return _FIXED[name]()
    family = name.partition("-")[0]
    if family not in _PATTERNS:
        raise ValueError(f"Unknown task {name!r} (allowed: {', '.join(names())})")
    match = _PATTERNS[family].fullmatch(name)
    if match is None:
        raise ValueError(f"Invalid task {name!r}: {_FORMATS[family]}")
    values = [int(group) for group in match.groups()]
    try:
        return _build(family, values)
    except ValueError as error:
        raise ValueError(f"Invalid task {name!r}: {error}") from None


def _build(family: str, values: list[int]) -> Dataset:
    if family == "parity":
        return parity(values[0])
    size, hidden, size_out = values
    if size_out != size:
        raise ValueError(f"both Ns must be equal ({_ENCODER}), got {size} and {size_out}")
    return encoder(size, hidden)
