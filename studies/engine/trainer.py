"""The population engine: train K members of one configuration at once, each exactly as it
would train alone.

Every member has its own seed (initial weights, data order) and may have its own
hyperparameters. The loss back-propagated is the sum of the members' losses, so each
member's gradient is its own. A member stops when its stop rule fires; from then on its
updates are masked, so its epochs to target and final weights are exactly those of a
single run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from studies import tasks
from studies.engine.build import build_model, build_optimizer, resolve_device
from studies.engine.config import TrainConfig
from studies.engine.losses import LOSSES
from studies.engine.result import STATUSES, TrainResult
from studies.engine.schedule import steps

RUNNING = -1
CONVERGED, MAX_EPOCHS, DIVERGED, STALLED = range(4)
PADDING = 99
"""Status of the padding members (see ``aligned_size``): never trained, never reported."""
_SUM_LOSSES = ("sse", "half_sse")
_LANES = 32
"""Elements per iteration of torch's widest vectorised CPU loop (2 × 16 float32 lanes)."""


def aligned_size(members: int) -> int:
    """The population size actually run: ``members`` rounded up to a multiple of 32 × the
    CPU threads (at most 16).

    torch's vectorised CPU kernels compute the last ``numel mod 32`` elements of a tensor (or
    of each thread's share of it) in a scalar tail whose rounding can differ in the last bit
    (fused vs unfused multiply-add, another exp). Rounding a population's size up keeps every
    member in the vector body, so member i gives bit for bit the trajectory of seed i trained
    alone (itself run as an aligned population). Padding members have their own seeds, are
    frozen from the start and are not reported.
    """
    block = _LANES * max(1, min(torch.get_num_threads(), 16))
    return -(-members // block) * block


def train(config: TrainConfig, *, seeds: Sequence[int] | None = None,
          per_member: dict[str, Tensor] | None = None, device: str | None = None,
          history_points: int = 500) -> TrainResult:
    """Train ``config`` over ``seeds`` (default: the config's) as one population.

    ``per_member`` gives optimizer hyperparameters per member ([members] tensors), so one
    population can hold several configurations × seeds. ``history_points`` bounds how many
    epochs of per-member loss are kept (0: none).
    """
    task = tasks.get(config.task)
    where = resolve_device(device or config.device)
    seed_list = list(seeds) if seeds is not None else config.seed_list
    members = len(seed_list)
    padding = aligned_size(members) - members
    seed_tensor = torch.tensor(seed_list + [-1 - i for i in range(padding)], dtype=torch.int64,
                               device=where)
    for name, values in (per_member or {}).items():
        if values.shape != (members,):
            raise ValueError(f"per_member[{name!r}] needs one value per seed ({members}), "
                             f"got shape {tuple(values.shape)}")
    padded = {name: torch.cat([values, values[-1:].expand(padding)])
              for name, values in (per_member or {}).items()}
    model = build_model(config, task, seed_tensor, where)
    optimizer = build_optimizer(config, model, padded)
    population = _Population(config, task, model, optimizer, seed_tensor, history_points,
                             members)
    return population.run()


class _Population:
    """One training run of a population: the loop and its per-member bookkeeping."""

    def __init__(self, config: TrainConfig, task: tasks.Task, model: nn.Module,
                 optimizer: torch.optim.Optimizer, seeds: Tensor, history_points: int,
                 members: int):
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.seeds = seeds
        self.flat: nn.Parameter = model.flat  # type: ignore[assignment]
        self.members = members
        device = self.flat.device
        self.dataset = (task.to(device=device, dtype=self.flat.dtype)
                        if isinstance(task, tasks.Dataset) else None)
        self.function = task if isinstance(task, tasks.FunctionTask) else None
        self.loss = LOSSES[config.loss]
        self.l2_keep = self._l2_mask()
        frozen = getattr(model, "frozen_mask", lambda: None)()
        self.grad_keep = None if frozen is None else (~frozen).to(self.flat.dtype)
        size = self.flat.shape[0]
        self.status = torch.full((size,), RUNNING, dtype=torch.int64, device=device)
        self.status[members:] = PADDING
        self.epochs = torch.zeros(size, dtype=torch.int64, device=device)
        self.quantity = torch.full((size,), math.inf, dtype=self.flat.dtype, device=device)
        self.best = torch.full_like(self.quantity, math.inf)
        self.improved_at = torch.zeros(size, dtype=torch.int64, device=device)
        self.stamps: list[float] = []
        self.history_every = max(1, math.ceil((config.stop.max_epochs + 1) / history_points)) \
            if history_points > 0 else 0
        self.history_epochs: list[int] = []
        self.history_loss: list[Tensor] = []

    # -- evaluation --------------------------------------------------------------------
    def _l2_mask(self) -> Tensor | None:
        if self.config.l2 == 0.0:
            return None
        bias_mask = getattr(self.model, "bias_mask", None)
        if bias_mask is None:
            return torch.ones(self.flat.shape[1], dtype=self.flat.dtype, device=self.flat.device)
        return (~bias_mask()).to(self.flat.dtype)

    def _outputs(self, inputs: Tensor | None) -> Tensor:
        return self.model() if inputs is None else self.model(inputs)

    def _losses(self, outputs: Tensor, targets: Tensor | None) -> Tensor:
        """Per-member training loss (with the L2 regulariser)."""
        if self.function is not None:
            losses = self.function.objective(outputs)
        else:
            assert targets is not None
            losses = self.loss.value(outputs, targets)
        if self.l2_keep is not None:
            losses = losses + self.config.l2 * (self.flat * self.flat * self.l2_keep).sum(dim=1)
        return losses

    def _evaluate(self, inputs: Tensor | None, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        """Outputs and per-member losses at the current weights, gradients in ``flat.grad``."""
        self.optimizer.zero_grad(set_to_none=False)
        with torch.enable_grad():
            outputs = self._outputs(inputs)
            losses = self._losses(outputs, targets)
            losses.sum().backward()
        if self.grad_keep is not None and self.flat.grad is not None:
            self.flat.grad.mul_(self.grad_keep)
        return outputs.detach(), losses.detach()

    def _losses_now(self) -> Tensor:
        """Per-member training loss on the whole training set, without gradients."""
        inputs, targets = self._full_set()
        with torch.no_grad():
            return self._losses(self._outputs(inputs), targets)

    def _quantity_sum(self, outputs: Tensor, targets: Tensor | None, losses: Tensor) -> Tensor:
        """The stop quantity of these patterns in additive form (summed over patterns)."""
        target = self.config.stop.target
        assert target is not None
        if target.quantity == "gap":
            assert self.function is not None
            return losses - self.function.minimum
        if target.quantity == "loss":
            if self.config.loss in _SUM_LOSSES or self.function is not None:
                return losses
            return losses * outputs.shape[-2]
        assert targets is not None and self.dataset is not None
        if target.quantity == "error_rate":
            correct = tasks.accuracy(outputs, targets.expand_as(outputs), self.dataset.kind)
            return (1.0 - correct) * outputs.shape[-2]
        error = targets - outputs
        sse = (error * error).sum(dim=(-2, -1))
        return 0.5 * sse if target.quantity == "half_sse" else sse

    def _quantity(self, summed: Tensor) -> Tensor:
        """From the additive form over a whole epoch to the stop rule's quantity."""
        target = self.config.stop.target
        assert target is not None
        if self.dataset is None or target.quantity in ("sse", "half_sse"):
            return summed
        if target.quantity == "loss" and self.config.loss in _SUM_LOSSES:
            return summed
        patterns = self.dataset.n_patterns
        if target.quantity == "mse":
            return summed / (patterns * self.dataset.n_outputs)
        return summed / patterns

    # -- bookkeeping -------------------------------------------------------------------
    def _settle(self, epoch: int, quantity: Tensor | None, gradient_max: Tensor | None,
                finite: Tensor) -> None:
        """Decide, for every running member, whether it stops at ``epoch``."""
        stop = self.config.stop
        running = self.status == RUNNING
        newly: list[tuple[Tensor, int]] = [(running & ~finite, DIVERGED)]
        if quantity is not None:
            self.quantity = torch.where(running, quantity, self.quantity)
            assert stop.target is not None
            newly.append((running & finite & (quantity < stop.target.below), CONVERGED))
            if stop.stall_patience is not None:
                better = quantity < self.best - stop.stall_tolerance
                self.improved_at = torch.where(running & better, epoch, self.improved_at)
                self.best = torch.where(running & better, quantity, self.best)
                newly.append((running & (epoch - self.improved_at >= stop.stall_patience),
                              STALLED))
        if gradient_max is not None:
            assert stop.gradient_below is not None
            newly.append((running & finite & (gradient_max < stop.gradient_below), CONVERGED))
        if epoch >= stop.max_epochs:
            newly.append((running, MAX_EPOCHS))
        for mask, code in newly:
            hit = mask & (self.status == RUNNING)
            self.status = torch.where(hit, code, self.status)
            self.epochs = torch.where(hit, epoch, self.epochs)

    def _record(self, epoch: int, losses: Tensor) -> None:
        self.stamps.append(time.perf_counter())
        if self.history_every and (epoch % self.history_every == 0
                                   or epoch == self.config.stop.max_epochs):
            self.history_epochs.append(epoch)
            self.history_loss.append(losses.to(torch.float32))

    def _step(self, losses: Tensor, reevaluate: Callable[[], Tensor]) -> None:
        """One optimizer step for the running members; stopped members keep their weights."""
        first = [losses]

        def closure() -> Tensor:
            return first.pop() if first else reevaluate()

        running = (self.status == RUNNING).unsqueeze(1)
        before = self.flat.detach().clone()
        self.optimizer.step(closure)  # type: ignore[arg-type]
        with torch.no_grad():
            self.flat.copy_(torch.where(running, self.flat, before))

    def _finite(self, losses: Tensor) -> Tensor:
        return torch.isfinite(losses) & torch.isfinite(self.flat.detach()).all(dim=1)

    def _all_stopped(self) -> bool:
        return not bool((self.status == RUNNING).any())

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> TrainResult:
        start = time.perf_counter()
        initial = self.flat.detach().clone()
        if self.config.mode == "batch":
            evaluation = "batch"
            self._run_batch()
        else:
            target = self.config.stop.target
            evaluation = target.evaluation if target is not None else "end_of_epoch"
            self._run_epochs(evaluation)
        wall = time.perf_counter() - start
        return self._result(initial, start, wall, evaluation)

    def _full_set(self) -> tuple[Tensor | None, Tensor | None]:
        if self.dataset is None:
            return None, None
        return self.dataset.inputs, self.dataset.targets

    def _run_batch(self) -> None:
        inputs, targets = self._full_set()
        stop = self.config.stop

        def reevaluate() -> Tensor:
            return self._evaluate(inputs, targets)[1]

        for epoch in range(stop.max_epochs + 1):
            outputs, losses = self._evaluate(inputs, targets)
            quantity = (self._quantity(self._quantity_sum(outputs, targets, losses))
                        if stop.target is not None else None)
            gradient_max = self._gradient_max() if stop.gradient_below is not None else None
            self._settle(epoch, quantity, gradient_max, self._finite(losses))
            self._record(epoch, losses)
            if self._all_stopped():
                return
            self._step(losses, reevaluate)

    def _gradient_max(self) -> Tensor:
        assert self.flat.grad is not None
        return self.flat.grad.abs().amax(dim=1)

    def _run_epochs(self, evaluation: str) -> None:
        """Online and mini-batch learning: several optimizer steps per epoch."""
        assert self.dataset is not None
        inputs, targets = self.dataset.inputs, self.dataset.targets
        stop = self.config.stop
        if evaluation == "end_of_epoch" or stop.gradient_below is not None:
            self._check_full_set(0, evaluation)
        else:
            self._record(0, self._losses_now())
        for epoch in range(1, stop.max_epochs + 1):
            presented = torch.zeros_like(self.quantity)
            finite = torch.ones_like(self.status, dtype=torch.bool)
            for batch in steps(inputs, targets, mode=self.config.mode, order=self.config.order,
                               batch_size=self.config.batch_size, seeds=self.seeds, epoch=epoch):
                outputs, losses = self._evaluate(batch.inputs, batch.targets)
                if stop.target is not None:
                    presented = presented + self._quantity_sum(outputs, batch.targets, losses)
                finite = finite & self._finite(losses)

                def reevaluate(batch_inputs: Tensor = batch.inputs,
                               batch_targets: Tensor = batch.targets) -> Tensor:
                    return self._evaluate(batch_inputs, batch_targets)[1]

                self._step(losses, reevaluate)
            if evaluation == "presented" and stop.gradient_below is None:
                quantity = self._quantity(presented) if stop.target is not None else None
                self._settle(epoch, quantity, None, finite & self._finite(presented))
                self._record(epoch, self._losses_now() if self.history_every else presented)
            else:
                self._check_full_set(epoch, evaluation, presented, finite)
            if self._all_stopped():
                return

    def _check_full_set(self, epoch: int, evaluation: str, presented: Tensor | None = None,
                        finite: Tensor | None = None) -> None:
        """Stop check on the whole training set at the weights after ``epoch``."""
        assert self.dataset is not None
        stop = self.config.stop
        if stop.gradient_below is not None:
            outputs, losses = self._evaluate(self.dataset.inputs, self.dataset.targets)
        else:
            with torch.no_grad():
                outputs = self._outputs(self.dataset.inputs)
                losses = self._losses(outputs, self.dataset.targets)
        quantity = None
        if stop.target is not None:
            summed = (presented if evaluation == "presented" and presented is not None
                      else self._quantity_sum(outputs, self.dataset.targets, losses))
            quantity = self._quantity(summed)
        gradient_max = self._gradient_max() if stop.gradient_below is not None else None
        all_finite = self._finite(losses) if finite is None else finite & self._finite(losses)
        self._settle(epoch, quantity, gradient_max, all_finite)
        self._record(epoch, losses)

    # -- the result --------------------------------------------------------------------
    def _result(self, initial: Tensor, start: float, wall: float,
                evaluation: str) -> TrainResult:
        real = slice(0, self.members)
        inputs, targets = self._full_set()
        with torch.no_grad():
            outputs = self._outputs(inputs)[real]
            final_loss = self._losses(self._outputs(inputs), targets)[real]
        status = self.status[real].tolist()
        epochs = self.epochs[real].tolist()
        times: list[float | None] = [
            self.stamps[epoch] - start if code == CONVERGED and epoch < len(self.stamps)
            else None
            for code, epoch in zip(status, epochs, strict=True)]
        train_accuracy = validation_accuracy = None
        if self.dataset is not None and self.dataset.kind != "regression":
            train_accuracy = tasks.accuracy(outputs, self.dataset.targets,
                                            self.dataset.kind).tolist()
            if self.dataset.validation_inputs is not None:
                assert self.dataset.validation_targets is not None
                with torch.no_grad():
                    validation = self._outputs(self.dataset.validation_inputs)[real]
                validation_accuracy = tasks.accuracy(validation, self.dataset.validation_targets,
                                                     self.dataset.kind).tolist()
        history = torch.stack(self.history_loss)[:, real].cpu() if self.history_loss else None
        return TrainResult(
            config=self.config,
            seeds=self.seeds[real].tolist(),
            status=[STATUSES[code] for code in status],
            epochs=epochs,
            final_loss=final_loss.tolist(),
            final_quantity=self.quantity[real].tolist(),
            time_to_target_s=times,
            initial_weights=initial[real].cpu(),
            final_weights=self.flat.detach()[real].cpu().clone(),
            model=self.model,
            wall_time_s=wall,
            device=str(self.flat.device),
            evaluation=evaluation,
            history_epochs=self.history_epochs,
            history_loss=history,
            train_accuracy=train_accuracy,
            validation_accuracy=validation_accuracy,
        )
