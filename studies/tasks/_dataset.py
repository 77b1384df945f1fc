"""The Dataset record: a fixed set of training patterns, optionally with a validation set."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

Kind = Literal["binary", "multiclass", "regression"]
KINDS: tuple[Kind, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Patterns a network is trained on.

    ``inputs`` is ``[patterns, features]`` and ``targets`` is ``[patterns, outputs]``, both
    float64 as built: 0/1 per output unit for ``binary``, one-hot for ``multiclass``,
    values for ``regression``. The validation pair is either both present (same layout)
    or both ``None``. Pattern order is part of the task (online learning depends on it)
    and is documented by each builder.
    """

    name: str
    inputs: Tensor
    targets: Tensor
    kind: Kind
    validation_inputs: Tensor | None
    validation_targets: Tensor | None
    description: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid kind {self.kind!r} for task {self.name!r} (allowed: "
                             f"{', '.join(KINDS)})")
        _check_pair(self.name, "training", self.inputs, self.targets)
        if (self.validation_inputs is None) != (self.validation_targets is None):
            raise ValueError(f"Task {self.name!r}: validation_inputs and validation_targets "
                             "must both be given or both be None")
        if self.validation_inputs is not None and self.validation_targets is not None:
            _check_pair(self.name, "validation", self.validation_inputs,
                        self.validation_targets)
            if (self.validation_inputs.shape[1] != self.inputs.shape[1]
                    or self.validation_targets.shape[1] != self.targets.shape[1]):
                raise ValueError(f"Task {self.name!r}: validation set has a different number "
                                 "of features or outputs than the training set")

    @property
    def n_inputs(self) -> int:
        """Features per pattern."""
        return self.inputs.shape[1]

    @property
    def n_outputs(self) -> int:
        """Output units per pattern."""
        return self.targets.shape[1]

    @property
    def n_patterns(self) -> int:
        """Training patterns."""
        return self.inputs.shape[0]

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Dataset:
        """A copy with every tensor on ``device`` and of ``dtype`` (``None``: unchanged).

        Always copies, so ``dataset.to()`` is a clone that shares no memory with ``dataset``.
        """

        def move(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device=device, dtype=dtype, copy=True)

        return replace(
            self,
            inputs=self.inputs.to(device=device, dtype=dtype, copy=True),
            targets=self.targets.to(device=device, dtype=dtype, copy=True),
            validation_inputs=move(self.validation_inputs),
            validation_targets=move(self.validation_targets),
        )


def _check_pair(name: str, which: str, inputs: Tensor, targets: Tensor) -> None:
    if inputs.dim() != 2 or targets.dim() != 2:
        raise ValueError(f"Task {name!r}: {which} inputs and targets must be 2-D "
                         f"[patterns, ...], got {tuple(inputs.shape)} and "
                         f"{tuple(targets.shape)}")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(f"Task {name!r}: {inputs.shape[0]} {which} input patterns but "
                         f"{targets.shape[0]} target patterns")
