"""A population of a user's own ``torch.nn.Module``, trained through ``torch.func``.

The module factory is named by a dotted import path ``package.module:factory``. Member i is
the module built under ``torch.manual_seed(seed_i)`` (its own initialisation, keyed by the
seed); all members' parameters live in one flat parameter [members, n_weights] and the
forward pass is ``vmap(functional_call(module, member_parameters, inputs))``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_factory(path: str) -> Callable[..., nn.Module]:
    """Import ``package.module:factory`` (a class or function returning a module)."""
    if not _PATH.match(path):
        raise ValueError(f"Invalid model.path: {path!r} (allowed: 'package.module:factory')")
    module_name, attribute = path.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except Exception as error:  # whatever importing user code raises, name the field
        raise ValueError(f"Invalid model.path: cannot import {path!r} ({error})") from error
    if not callable(factory):
        raise ValueError(f"Invalid model.path: {path!r} is not callable")
    return factory


class ModulePopulation(nn.Module):
    """K copies of a user's module with independent weights, as one population."""

    def __init__(self, factory: Callable[..., nn.Module], kwargs: dict[str, Any], seeds: Tensor,
                 *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__()
        template = factory(**kwargs)
        if not isinstance(template, nn.Module):
            raise ValueError("Invalid model.path: the factory must return a torch.nn.Module")
        template = template.to(dtype=dtype)
        if any(True for _ in template.buffers()):
            raise ValueError("Invalid model.path: modules with buffers (e.g. batch norm) "
                             "cannot be trained as a population")
        self._names = [name for name, _ in template.named_parameters()]
        self._shapes = [tuple(p.shape) for _, p in template.named_parameters()]
        self._template = [template.to(device)]  # a list: not registered as a submodule
        rows = []
        for seed in seeds.tolist():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                member = factory(**kwargs).to(dtype=dtype)
            rows.append(torch.cat([p.detach().reshape(-1) for p in member.parameters()]))
        self.flat = nn.Parameter(torch.stack(rows).to(device))

    @property
    def members(self) -> int:
        return self.flat.shape[0]

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        views = {}
        offset = 0
        for name, shape in zip(self._names, self._shapes, strict=True):
            size = math.prod(shape)
            views[name] = flat[:, offset : offset + size].reshape(flat.shape[0], *shape)
            offset += size
        return views

    def forward(self, inputs: Tensor) -> Tensor:
        template = self._template[0]

        def one(parameters: dict[str, Tensor], patterns: Tensor) -> Tensor:
            result: Tensor = functional_call(template, parameters, (patterns,))
            return result

        shared = inputs.dim() == 2
        batched: Tensor = vmap(one, in_dims=(0, None if shared else 0))(
            self.unflatten(self.flat), inputs)
        return batched

    def layer_weights(self, flat_member: Tensor) -> dict[str, Any]:
        views = self.unflatten(flat_member.detach().reshape(1, -1).cpu())
        return {name: value[0].tolist() for name, value in views.items()}
