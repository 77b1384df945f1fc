"""Boolean tasks: AND, OR, XOR, N-bit parity and the N-M-N encoder.

Every pattern set here is the whole truth table, stored in binary counting order with the
first input as the most significant bit: (0,0), (0,1), (1,0), (1,1) for two inputs. This is
the order of Negnevitsky's perceptron (AND) worked example (ALGORITHMS.md); the lecture's
truth-table slides list the rows as (0,0), (1,0), (0,1), (1,1). Negnevitsky's
back-propagation XOR example presents the patterns in the order (1,1), (0,1), (1,0), (0,0);
the engine, not the task, decides the presentation order.
"""

import itertools

import torch
from torch import Tensor

from ._dataset import Dataset

PARITY_BITS = range(2, 13)
ENCODER_SIZES = range(2, 65)


def _truth_table(bits: int) -> Tensor:
    """All ``2**bits`` binary patterns in counting order, first input most significant."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=bits)), dtype=torch.float64)


def _gate(name: str, outputs: tuple[float, float, float, float], description: str) -> Dataset:
    return Dataset(
        name=name,
        inputs=_truth_table(2),
        targets=torch.tensor(outputs, dtype=torch.float64).unsqueeze(1),
        kind="binary",
        validation_inputs=None,
        validation_targets=None,
        description=description,
    )


def logical_and() -> Dataset:
    """Two-input AND: linearly separable."""
    return _gate("and", (0.0, 0.0, 0.0, 1.0),
                 "Two-input logical AND, 4 patterns (lecture; Negnevitsky ch. 6)")


def logical_or() -> Dataset:
    """Two-input OR: linearly separable."""
    return _gate("or", (0.0, 1.0, 1.0, 1.0),
                 "Two-input logical OR, 4 patterns (lecture; Negnevitsky ch. 6)")


def logical_xor() -> Dataset:
    """Two-input exclusive OR: not linearly separable, needs a hidden layer."""
    return _gate("xor", (0.0, 1.0, 1.0, 0.0),
                 "Two-input exclusive OR, 4 patterns (lecture; Negnevitsky ch. 6)")


def parity(bits: int) -> Dataset:
    """All ``2**bits`` patterns of 0/1 inputs; target 1 when the number of ones is odd."""
    if bits not in PARITY_BITS:
        raise ValueError(f"N must be in {PARITY_BITS.start}..{PARITY_BITS.stop - 1}")
    inputs = _truth_table(bits)
    return Dataset(
        name=f"parity-{bits}",
        inputs=inputs,
        targets=(inputs.sum(dim=1) % 2).unsqueeze(1),
        kind="binary",
        validation_inputs=None,
        validation_targets=None,
        description=f"{bits}-bit parity, all {2 ** bits} patterns of 0/1 inputs, target 1 for "
                    "an odd number of ones (Rumelhart, Hinton & Williams 1986)",
    )


def encoder(size: int, hidden: int) -> Dataset:
    """The ``size`` one-hot patterns, each its own target, through ``hidden`` hidden units."""
    if size not in ENCODER_SIZES:
        raise ValueError(f"N must be in {ENCODER_SIZES.start}..{ENCODER_SIZES.stop - 1}")
    if not 1 <= hidden <= size:
        raise ValueError(f"M must be in 1..{size}")
    patterns = torch.eye(size, dtype=torch.float64)
    return Dataset(
        name=f"encoder-{size}-{hidden}-{size}",
        inputs=patterns,
        targets=patterns.clone(),
        kind="binary",
        validation_inputs=None,
        validation_targets=None,
        description=f"{size}-{hidden}-{size} encoder: auto-associate the {size} one-hot "
                    f"patterns through {hidden} hidden units (Ackley, Hinton & Sejnowski 1985)",
    )
