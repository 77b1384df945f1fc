"""Build a population (model with initial weights, optimizer) from a TrainConfig."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

import optimizers
from models import init as inits
from models.mlp import MLP, Perceptron
from models.module_population import ModulePopulation, load_factory
from models.point import Point
from studies import tasks
from studies.engine.config import InitConfig, ModelConfig, TrainConfig


def default_layers(task: tasks.Dataset) -> list[int]:
    """The architecture used when a spec gives none: the lecture's 2-2-1 for the logic gates,
    N-N-1 for parity-N, N-M-N for encoders, one hidden layer of 16 for the others."""
    if task.name.startswith("encoder-"):
        _, n, m, _ = task.name.split("-")
        return [int(n), int(m), int(n)]
    if task.name in ("and", "or", "xor"):
        return [2, 2, 1]
    if task.name.startswith("parity-"):
        return [task.n_inputs, task.n_inputs, 1]
    return [task.n_inputs, 16, task.n_outputs]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("Invalid device: 'cuda' was asked for but no CUDA device is available "
                         "(allowed here: cpu, auto)")
    return torch.device(name)


def _scheme(init: InitConfig) -> inits.Scheme:
    if init.scheme == "uniform":
        return inits.Uniform(init.low, init.high)
    if init.scheme == "xavier":
        return inits.Xavier(init.gain)
    if init.scheme == "explicit":
        assert init.weights is not None
        return inits.Explicit(tuple(init.weights))
    if init.scheme in ("haykin", "negnevitsky"):
        return inits.Haykin()
    raise ValueError(f"Invalid init.scheme: {init.scheme!r} does not apply to this model")


def build_model(config: TrainConfig, task: tasks.Task, seeds: Tensor,
                device: torch.device) -> nn.Module:
    """The population model with member i initialised from ``seeds[i]``."""
    dtype = config.torch_dtype
    members = len(seeds)
    if isinstance(task, tasks.FunctionTask):
        init = config.init or InitConfig(scheme="start")
        if init.scheme != "start":
            raise ValueError(f"Invalid init.scheme: {init.scheme!r} (allowed for a function "
                             "task: start)")
        point = Point(task.dimension, members=members, dtype=dtype, device=device)
        point.initialise(init.point or task.start, seeds, init.spread)
        return point
    spec = config.model or ModelConfig()
    if spec.type == "module":
        assert spec.path is not None
        if config.init is not None and config.init.scheme != "module":
            raise ValueError("Invalid init.scheme: a module model initialises itself "
                             "(allowed: module)")
        return ModulePopulation(load_factory(spec.path), spec.kwargs, seeds, dtype=dtype,
                                device=device)
    model: MLP
    if spec.type == "perceptron":
        model = Perceptron(task.n_inputs, task.n_outputs, train_threshold=spec.train_threshold,
                           members=members, dtype=dtype, device=device)
        default_init = InitConfig(scheme="uniform", low=-0.5, high=0.5)
    else:
        model = MLP(spec.layers or default_layers(task), spec.activation, spec.output,
                    members=members, dtype=dtype, device=device)
        default_init = InitConfig(scheme="haykin")
    model.initialise(_scheme(config.init or default_init), seeds)
    return model


def build_optimizer(config: TrainConfig, model: nn.Module,
                    per_member: dict[str, Tensor] | None = None) -> torch.optim.Optimizer:
    """The configured optimizer over the population, with ``per_member`` hyperparameters
    ([members] tensors) overriding the spec's values. A key ``"name[i]"`` sets element i of
    a tuple hyperparameter (e.g. ``"betas[0]"``)."""
    optimizer_class: Any = optimizers.get(config.optimizer.name)
    flat: Tensor = model.flat  # type: ignore[assignment]
    hyperparameters = with_per_member(
        config.optimizer.name, dict(config.optimizer.hyperparameters),
        {key: values.to(device=flat.device, dtype=flat.dtype)
         for key, values in (per_member or {}).items()})
    return optimizer_class([flat], members=flat.shape[0], **hyperparameters)


def with_per_member(optimizer: str, hyperparameters: dict[str, Any],
                    per_member: dict[str, Tensor]) -> dict[str, Any]:
    """The optimizer's arguments ``hyperparameters`` with the ``per_member`` tensors in
    place: a key ``"name[i]"`` sets element i of a tuple hyperparameter (the optimizer's
    default tuple where the arguments have none)."""
    merged = dict(hyperparameters)
    defaults = inspect.signature(optimizers.get(optimizer).__init__).parameters
    for key, values in per_member.items():
        name, _, index = key.partition("[")
        if not index:
            merged[name] = values
            continue
        if name not in defaults:
            raise ValueError(f"unknown hyperparameter {name!r} for {optimizer}")
        current = list(merged.get(name, defaults[name].default))
        current[int(index.rstrip("]"))] = values
        merged[name] = tuple(current)
    return merged
