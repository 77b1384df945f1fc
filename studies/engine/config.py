"""One training configuration: task, model, init, loss, optimizer, learning mode, stop rule,
seeds. The file behind ``optistudy train SPEC.yaml``; serialised whole into results."""

from __future__ import annotations

import inspect
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import optimizers
from models.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from studies import tasks
from studies.engine.losses import LOSSES

_STRICT = ConfigDict(extra="forbid", frozen=True)

# Parameters of an optimizer's constructor that are not hyperparameters a spec may set.
_NOT_HYPERPARAMETERS = {"self", "params", "members"}


class ModelConfig(BaseModel):
    """The network: ``mlp`` (layers, activation, output), ``perceptron`` (hard limiter, the
    threshold trained or held fixed), or ``module``: a user's ``torch.nn.Module`` factory
    named by a dotted import path ``package.module:factory``, trained as a population
    through ``torch.func``. Function-minimisation tasks take no model."""

    model_config = _STRICT
    type: Literal["mlp", "perceptron", "module"] = "mlp"
    layers: list[int] | None = Field(
        default=None, description="mlp: units per layer, inputs first (default: the task's)")
    activation: str = "sigmoid"
    output: str = "sigmoid"
    train_threshold: bool = True
    path: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"unknown activation {value!r} (allowed: "
                             f"{', '.join(HIDDEN_ACTIVATIONS)})")
        return value

    @field_validator("output")
    @classmethod
    def _known_output(cls, value: str) -> str:
        if value not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"unknown output {value!r} (allowed: {', '.join(OUTPUT_ACTIVATIONS)})")
        return value

    @field_validator("layers")
    @classmethod
    def _positive_layers(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) < 2 or min(value) < 1):
            raise ValueError("needs at least two positive layer sizes, inputs first")
        return value

    @model_validator(mode="after")
    def _module_has_path(self) -> ModelConfig:
        if self.type == "module" and self.path is None:
            raise ValueError("type 'module' needs path: 'package.module:factory'")
        return self


class InitConfig(BaseModel):
    """How member i's initial weights are drawn from seed i: ``uniform`` (low, high),
    ``haykin`` / ``negnevitsky`` (±2.4/Fᵢ, the lecture's), ``xavier`` (gain), ``explicit``
    (weights in the ``torch.nn.Linear`` convention, the same for every member), ``module``
    (a user module's own initialisation under seed i), ``start`` (a function task's start
    point, optionally jittered uniformly by ±``spread``)."""

    model_config = _STRICT
    scheme: Literal["uniform", "haykin", "negnevitsky", "xavier", "explicit", "module",
                    "start"] = "haykin"
    low: float = -0.5
    high: float = 0.5
    gain: float = 1.0
    spread: float = Field(default=0.0, ge=0.0)
    weights: list[dict[str, Any]] | None = None
    point: list[float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> InitConfig:
        if self.scheme == "uniform" and not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.scheme == "explicit" and not self.weights:
            raise ValueError("scheme 'explicit' needs weights: [{weight, bias}, ...]")
        return self


class OptimizerConfig(BaseModel):
    """A training algorithm from the ``optimizers`` registry and its hyperparameters, by the
    constructor's own names (e.g. ``rprop`` with ``variant``, ``delta0``, ``eta_plus``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        optimizers.get(value)
        return value

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _valid_hyperparameters(self) -> OptimizerConfig:
        optimizer_class = optimizers.get(self.name)
        allowed = sorted(set(inspect.signature(optimizer_class.__init__).parameters)
                         - _NOT_HYPERPARAMETERS)
        for key in self.hyperparameters:
            if key not in allowed:
                raise ValueError(f"unknown hyperparameter {key!r} for {self.name} "
                                 f"(allowed: {', '.join(allowed)})")
        probe = torch.zeros(1, requires_grad=True)
        optimizer_class([probe], **self.hyperparameters)
        return self


class TargetConfig(BaseModel):
    """Converged when ``quantity`` < ``below``. ``evaluation``: ``presented`` sums the
    quantity over an epoch's patterns as they were presented (online: each with the weights
    current at that moment — the lecture's rule); ``end_of_epoch`` re-evaluates it on the
    whole training set with the weights at the end of the epoch. In batch mode the two are
    the same: the quantity at the weights the epoch's gradient is taken at."""

    model_config = _STRICT
    quantity: Literal["loss", "sse", "half_sse", "mse", "error_rate", "gap"] = "sse"
    below: float = Field(default=0.001, gt=0.0)
    evaluation: Literal["presented", "end_of_epoch"] = "presented"


class StopConfig(BaseModel):
    """When a member stops: its target is met (converged), the largest |∂E/∂w| is below
    ``gradient_below`` (R neuralnet's rule; converged), its loss is not finite (diverged),
    its stop quantity has not improved by ``stall_tolerance`` for ``stall_patience`` epochs
    (stalled), or ``max_epochs`` have run (max_epochs)."""

    model_config = _STRICT
    target: TargetConfig | None = Field(default_factory=TargetConfig)
    max_epochs: int = Field(default=1000, ge=1, le=10_000_000)
    gradient_below: float | None = Field(default=None, gt=0.0)
    stall_patience: int | None = Field(default=None, ge=1)
    stall_tolerance: float = Field(default=0.0, ge=0.0)


class TrainConfig(BaseModel):
    """One training configuration, trained over its seeds as one population."""

    model_config = _STRICT
    task: str
    model: ModelConfig | None = None
    init: InitConfig | None = None
    loss: Literal["sse", "half_sse", "mse", "bce", "cross_entropy"] = "sse"
    l2: float = Field(default=0.0, ge=0.0, description="loss + l2·Σw² over weights, not biases")
    optimizer: OptimizerConfig
    mode: Literal["batch", "online", "minibatch"] = "batch"
    batch_size: int | None = Field(default=None, ge=1)
    order: Literal["fixed", "shuffled"] | list[int] = Field(
        default="shuffled",
        description="online/minibatch: the task's order, a per-member shuffle every epoch, or "
                    "an explicit presentation order (a permutation of the pattern indices)")
    stop: StopConfig = Field(default_factory=StopConfig)
    seeds: int | list[int] = Field(default=10, description="a count (seeds 0..n−1) or a list")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    dtype: Literal["float64", "float32"] = "float64"
    compile: bool = Field(
        default=False,
        description="compile the optimizer step, and a small MLP's forward/backward pass "
                    "written out weight by weight, with torch.compile (fused kernels: faster "
                    "for large populations, seconds of "
                    "compilation first; falls back to eager where torch.compile cannot run). "
                    "Results may differ from eager in the last bit, so compare runs with the "
                    "same setting")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        tasks.get(value)
        return value

    @field_validator("seeds")
    @classmethod
    def _valid_seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int) and not 1 <= value <= 10_000_000:
            raise ValueError("a seed count must be in 1..10000000")
        if isinstance(value, list):
            if not value:
                raise ValueError("the seed list is empty")
            if len(set(value)) != len(value):
                raise ValueError("seeds must be distinct")
            if min(value) < 0 or max(value) >= 2**62:
                raise ValueError("seeds must be in 0..2**62-1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        task = tasks.get(self.task)
        is_function = isinstance(task, tasks.FunctionTask)
        if is_function and self.model is not None:
            raise ValueError(f"task {self.task!r} minimises a function: it takes no model")
        if self.mode == "minibatch" and self.batch_size is None:
            raise ValueError("mode 'minibatch' needs batch_size")
        if is_function and self.mode != "batch":
            raise ValueError(f"task {self.task!r} minimises a function: mode must be 'batch'")
        target = self.stop.target
        if target is not None and is_function != (target.quantity in ("gap", "loss")):
            allowed = "gap, loss" if is_function else "loss, sse, half_sse, mse, error_rate"
            raise ValueError(f"stop.target.quantity {target.quantity!r} does not fit task "
                             f"{self.task!r} (allowed: {allowed})")
        model = self.model or ModelConfig()
        if isinstance(self.order, list) and not is_function:
            patterns = task.n_patterns  # type: ignore[union-attr]
            if sorted(self.order) != list(range(patterns)):
                raise ValueError(f"order {self.order} must be a permutation of 0..{patterns - 1}")
        if not is_function:
            assert isinstance(task, tasks.Dataset)
            needs = LOSSES[self.loss].needs_output
            output = "step" if model.type == "perceptron" else model.output
            if needs and model.type != "module" and output not in needs:
                raise ValueError(f"loss {self.loss!r} needs model.output "
                                 f"{' or '.join(needs)}, got {output!r}")
            if model.layers is not None and (model.layers[0] != task.n_inputs
                                             or model.layers[-1] != task.n_outputs):
                raise ValueError(f"model.layers {model.layers} must start with the task's "
                                 f"{task.n_inputs} inputs and end with its {task.n_outputs} "
                                 "outputs")
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32
