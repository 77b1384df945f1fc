"""The population engine: train K members of one configuration at once, each exactly as it
would train alone.

Every member has its own seed (initial weights, data order) and may have its own
hyperparameters. The loss back-propagated is the sum of the members' losses, so each
member's gradient is its own. A member stops when its stop rule fires: its outcome (status,
epochs, weights, time) is recorded at that moment, exactly what a single run would give.
Stopped members stay in the tensors (they are independent, so they disturb no one) until
half of the rows have stopped; then the population is compacted to the running members,
optimizer state included, so stopped members stop costing time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from models import unrolled
from models.mlp import MLP
from optimizers.compiling import compiled
from optimizers.rprop import Rprop
from studies import tasks
from studies.engine.build import build_model, build_optimizer, resolve_device
from studies.engine.config import TrainConfig
from studies.engine.history import History
from studies.engine.kernels import Epoch, Pass, compiled_epoch, compiled_pass, variant_of
from studies.engine.losses import LOSSES
from studies.engine.pending import RUNNING, PendingStops
from studies.engine.result import STATUSES, TrainResult
from studies.engine.schedule import steps

CONVERGED, MAX_EPOCHS, DIVERGED, STALLED = range(4)
_SUM_LOSSES = ("sse", "half_sse")
GPU_CHECK_EVERY = 16
"""Epochs between the host's reads of who stopped, on a GPU (see ``PendingStops``): the
host runs up to this many epochs ahead; a training runs at most this many epochs past its
last member's stop."""
_LANES = 32
"""Elements per iteration of torch's widest vectorised CPU loop (2 × 16 float32 lanes)."""


def aligned_size(members: int) -> int:
    """The number of rows a population of ``members`` runs as: rounded up to a multiple of
    32 × the CPU threads (at most 16).

    torch's vectorised CPU kernels compute the last ``numel mod 32`` elements of a tensor (or
    of each thread's share of it) in a scalar tail whose rounding can differ in the last bit
    (fused vs unfused multiply-add, another exp). Rounding the population up keeps every
    member in the vector body, so member i gives bit for bit the trajectory of seed i trained
    alone (itself run as an aligned population). Padding rows have their own seeds, never
    count as running and are not reported.
    """
    block = _LANES * max(1, min(torch.get_num_threads(), 16))
    return -(-members // block) * block


def train(config: TrainConfig, *, seeds: Sequence[int] | None = None,
          per_member: dict[str, Tensor] | None = None, device: str | None = None,
          history_points: int = 500, check_every: int | None = None) -> TrainResult:
    """Train ``config`` over ``seeds`` (default: the config's) as one population, to the
    end. ``Training`` takes the same arguments and trains in steps that can be saved."""
    return Training(config, seeds=seeds, per_member=per_member, device=device,
                    history_points=history_points, check_every=check_every).run()


class Training:
    """One training run of a population: the loop and its per-member bookkeeping.

    ``per_member`` gives optimizer hyperparameters per member ([members] tensors; a key
    ``"name[i]"`` sets element i of a tuple such as ``betas``), so one population can hold
    several configurations × seeds; ``groups`` says how many (consecutive equal blocks of
    members), so that telemetry is kept per configuration and ``group_results`` can report
    each as if it had trained alone. ``history_points`` bounds how many epochs of per-member
    loss are kept (0: none). ``check_every``: in batch learning, how many epochs pass between
    the host's reads of who stopped (``pending``; default 1 on the CPU, where a read costs
    nothing, and ``GPU_CHECK_EVERY`` on a GPU); the outcomes are the same for any value.
    ``advance`` trains; ``result`` reports.

    Rows are the population's current tensor rows; ``index[row]`` is the member a row
    trains. Outcomes are kept per member (``out_*``), written when the member stops.
    """

    def __init__(self, config: TrainConfig, *, seeds: Sequence[int] | None = None,
                 per_member: dict[str, Tensor] | None = None, device: str | None = None,
                 history_points: int = 500, groups: int = 1, check_every: int | None = None):
        task = tasks.get(config.task)
        where = resolve_device(device or config.device)
        seed_list = list(seeds) if seeds is not None else config.seed_list
        members = len(seed_list)
        if groups < 1 or members % groups:
            raise ValueError(f"groups must divide the {members} members into equal blocks; "
                             f"got groups={groups}")
        for name, values in (per_member or {}).items():
            if values.shape != (members,):
                raise ValueError(f"per_member[{name!r}] needs one value per seed ({members}), "
                                 f"got shape {tuple(values.shape)}")
        padding = aligned_size(members) - members
        seed_tensor = torch.tensor(seed_list + [-1 - i for i in range(padding)], dtype=torch.int64,
                                   device=where)
        padded = {name: torch.cat([values, values[-1:].expand(padding)])
                  for name, values in (per_member or {}).items()}
        model = build_model(config, task, seed_tensor, where)
        optimizer = build_optimizer(config, model, padded)
        self._setup(config, task, model, optimizer, seed_tensor, members, history_points, groups)
        self.check_every = (check_every if check_every is not None else
                            1 if where.type == "cpu" else GPU_CHECK_EVERY)
        if self.check_every < 1:
            raise ValueError(f"check_every must be a whole number of epochs >= 1; "
                             f"got {check_every}")
        self.pending = (PendingStops(self.flat.detach(), self.flat.dtype)
                        if self.check_every > 1 and config.mode == "batch" else None)

    def _setup(self, config: TrainConfig, task: tasks.Task, model: nn.Module,
               optimizer: torch.optim.Optimizer, seeds: Tensor, members: int,
               history_points: int, groups: int) -> None:
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.seeds = seeds
        self.members = members
        self.member_seeds: list[int] = seeds[:members].tolist()
        self.flat: nn.Parameter = model.flat  # type: ignore[assignment]
        rows, device = self.flat.shape[0], self.flat.device
        self.dataset = (task.to(device=device, dtype=self.flat.dtype)
                        if isinstance(task, tasks.Dataset) else None)
        self.function = task if isinstance(task, tasks.FunctionTask) else None
        self.loss = LOSSES[config.loss]
        self.by_hand = isinstance(model, MLP)
        self.gradient = getattr(model, "gradient", None)
        self.optimizer_step: Callable[..., Any] = optimizer.step
        self.layout = unrolled.Layout.of(model) if isinstance(model, MLP) else None
        self.unrolled_gradient: Callable[..., Pass] | None = None
        self.finite_of: tuple[Tensor, Tensor] | None = None
        """The losses of the last compiled pass and their rows' finiteness."""
        if config.compile:
            compile_kernels = getattr(optimizer, "compile_kernels", None)
            if compile_kernels is not None:  # compiled once per process, not per optimizer
                compile_kernels()
            else:
                self.optimizer_step = compiled(optimizer.step, "the optimizer step")
            if self.layout is not None:
                self.unrolled_gradient = compiled_pass(self.layout, config.loss)
                with torch.no_grad():  # the layout the compiled pass is fastest on
                    self.flat.data = unrolled.column_major(self.flat.data)
        self.ones = torch.ones(self.flat.shape[1], dtype=self.flat.dtype, device=device)
        self.l2_keep = self._l2_mask()
        frozen = getattr(model, "frozen_mask", lambda: None)()
        self.grad_keep = None if frozen is None else (~frozen).to(self.flat.dtype)
        # per row
        self.index = torch.arange(rows, device=device)
        self.running = self.index < members
        self.running_count = members
        self.best = torch.full((rows,), math.inf, dtype=self.flat.dtype, device=device)
        self.improved_at = torch.zeros(rows, dtype=torch.int64, device=device)
        # per member
        self.out_status = torch.full((members,), RUNNING, dtype=torch.int64, device=device)
        self.out_epochs = torch.zeros(members, dtype=torch.int64, device=device)
        self.out_quantity = torch.full((members,), math.nan, dtype=self.flat.dtype, device=device)
        self.out_time = torch.full((members,), math.nan, dtype=torch.float64, device=device)
        self.out_weights = self.flat.detach()[:members].clone()
        self.initial_weights = self.out_weights.to("cpu", copy=True)
        self.history = History(points=history_points, max_epochs=config.stop.max_epochs,
                               members=members, optimizer=optimizer, flat=self.flat,
                               trajectory=self.function is not None, groups=groups)
        self.compactions = 0
        self.epoch = 0
        """The next epoch to train (batch: the next stop check at w_epoch)."""
        self.elapsed = 0.0
        """Seconds spent training so far, over every ``advance``."""
        self.segment_start = time.perf_counter()
        target = config.stop.target
        self.evaluation = ("batch" if config.mode == "batch" else
                           target.evaluation if target is not None else "end_of_epoch")
        self.fused_update = (
            self.unrolled_gradient is not None and isinstance(model, MLP)
            and self.dataset is not None and unrolled.suits(model, self.dataset.inputs)
            and config.mode == "batch" and isinstance(optimizer, Rprop)
            and len(optimizer.param_groups) == 1 and self.l2_keep is None
            and self.grad_keep is None and config.stop.gradient_below is None)
        """Whether a batch epoch runs as one compiled kernel, pass and update
        (``kernels.compiled_epoch``, ``_fused_epoch``)."""
        self.epoch_kernel: Callable[..., Epoch] | None = None
        """The fused kernel, chosen at the first fused epoch."""

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
        """Per-row training loss (with the L2 regulariser)."""
        if self.function is not None:
            losses = self.function.objective(outputs)
        else:
            assert targets is not None
            losses = self.loss.value(outputs, targets)
        if self.l2_keep is not None:
            losses = losses + self._l2_term()
        return losses

    def _l2_term(self) -> Tensor:
        assert self.l2_keep is not None
        return self.config.l2 * (self.flat * self.flat * self.l2_keep).sum(dim=1)

    def _evaluate(self, inputs: Tensor | None, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        """Outputs and per-row losses at the current weights, gradients in ``flat.grad``."""
        if self.by_hand:
            assert inputs is not None and targets is not None and self.gradient is not None
            if (self.unrolled_gradient is not None and isinstance(self.model, MLP)
                    and unrolled.suits(self.model, inputs)):
                outputs, gradient, losses, finite = self.unrolled_gradient(
                    self.flat.detach(), inputs, targets)
                if self.l2_keep is not None:
                    losses = losses + self._l2_term()
                else:
                    self.finite_of = losses, finite
            else:
                outputs, gradient = self.gradient(
                    inputs, lambda out: self.loss.output_gradient(out, targets))
                with torch.no_grad():
                    losses = self._losses(outputs, targets)
            if self.l2_keep is not None:
                gradient += (2.0 * self.config.l2) * self.flat.detach() * self.l2_keep
            self.flat.grad = gradient
        else:
            self.optimizer.zero_grad(set_to_none=False)
            with torch.enable_grad():
                outputs = self._outputs(inputs)
                losses = self._losses(outputs, targets)
                losses.sum().backward()
            outputs, losses = outputs.detach(), losses.detach()
        if self.grad_keep is not None and self.flat.grad is not None:
            self.flat.grad.mul_(self.grad_keep)
        return outputs, losses

    def _losses_now(self) -> Tensor:
        """Per-row training loss on the whole training set, without gradients."""
        inputs, targets = self._full_set()
        with torch.no_grad():
            return self._losses(self._outputs(inputs), targets)

    def _quantity_sum(self, outputs: Tensor, targets: Tensor | None, losses: Tensor) -> Tensor:
        """The stop quantity of these patterns in additive form (summed over patterns)."""
        target = self.config.stop.target
        assert target is not None
        if target.quantity == self.config.loss in _SUM_LOSSES and self.l2_keep is None:
            return losses
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

    def _finite(self, losses: Tensor) -> Tensor:
        """Rows whose loss and weights are all finite (a row's sum, taken as a matrix-vector
        product for speed, is not finite when any weight is inf or NaN)."""
        if self.finite_of is not None and self.finite_of[0] is losses:
            return self.finite_of[1]  # the compiled pass found it
        weights = self.flat.detach()
        row_sums = torch.mv(weights, self.ones.to(weights.dtype))
        return torch.isfinite(losses) & torch.isfinite(row_sums)

    # -- bookkeeping -------------------------------------------------------------------
    def _settle(self, epoch: int, quantity: Tensor | None, gradient_max: Tensor | None,
                finite: Tensor, weights: Tensor | None = None) -> None:
        """Decide, for every running row, whether its member stops at ``epoch``; record the
        outcome of those that do (or, with ``pending``, keep it on the device for
        ``_take_pending``). ``weights``: the rows' weights at ``epoch`` (default: now)."""
        weights = self.flat.detach() if weights is None else weights
        stop = self.config.stop
        running = self.running
        if (self.pending is None and stop.stall_patience is None and gradient_max is None
                and epoch < stop.max_epochs):
            # the common case, cheaply: nobody stops unless a loss is bad or a target is met
            stops = ~finite
            if quantity is not None:
                assert stop.target is not None
                stops = stops | (quantity < stop.target.below)
            if not bool((running & stops).any()):
                return
        code = self._stop_codes(epoch, quantity, gradient_max, finite)
        stopping = running & (code != RUNNING)
        if self.pending is not None:
            self.pending.mark(epoch, stopping, code, quantity, weights)
            self.running = running & ~stopping
            return
        rows = stopping.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        self._record_stops(rows, code[rows], epoch,
                           None if quantity is None else quantity[rows], weights[rows],
                           self.elapsed + time.perf_counter() - self.segment_start)

    def _stop_codes(self, epoch: int, quantity: Tensor | None, gradient_max: Tensor | None,
                    finite: Tensor) -> Tensor:
        """Per row, the status the stop rule gives at ``epoch`` (``RUNNING``: train on)."""
        stop = self.config.stop
        running = self.running
        code = torch.where(finite, RUNNING, DIVERGED)
        if stop.stall_patience is not None and quantity is not None:
            better = running & (quantity < self.best - stop.stall_tolerance)
            self.improved_at = torch.where(better, epoch, self.improved_at)
            self.best = torch.where(better, quantity, self.best)
            stalled = finite & (epoch - self.improved_at >= stop.stall_patience)
            code = torch.where(stalled, STALLED, code)
        if gradient_max is not None:
            assert stop.gradient_below is not None
            code = torch.where(finite & (gradient_max < stop.gradient_below), CONVERGED, code)
        if quantity is not None:
            assert stop.target is not None
            code = torch.where(finite & (quantity < stop.target.below), CONVERGED, code)
        if epoch >= stop.max_epochs:
            code = torch.where(code == RUNNING, MAX_EPOCHS, code)
        return code

    def _record_stops(self, rows: Tensor, code: Tensor, epoch: int | Tensor,
                      quantity: Tensor | None, weights: Tensor,
                      seconds: float | list[float]) -> None:
        """The members of ``rows`` stopped: record their outcomes, take them out of the
        running rows, and compact the population once half of its rows have stopped."""
        members = self.index[rows]
        self.out_status[members] = code
        self.out_epochs[members] = epoch
        self.out_weights[members] = weights
        if quantity is not None:
            self.out_quantity[members] = quantity.to(self.out_quantity.dtype)
        self.out_time[members] = (seconds if isinstance(seconds, float) else
                                  torch.tensor(seconds, dtype=self.out_time.dtype,
                                               device=self.out_time.device))
        self.running[rows] = False
        self.running_count -= rows.numel()
        if self.running_count and self.running_count <= self.flat.shape[0] // 2:
            self._compact()

    def _take_pending(self) -> None:
        """Record the stops kept on the device since the last take (one wait for the
        device, once per ``check_every`` epochs)."""
        assert self.pending is not None
        rows, code, epochs, quantity, weights, finished_at = self.pending.take()
        if rows.numel() == 0:
            return
        seconds = [self.elapsed + at - self.segment_start for at in finished_at]
        self._record_stops(rows, code, epochs, quantity, weights, seconds)

    def _compact(self) -> None:
        """Keep only the running rows (padded with stopped ones to an aligned size), in the
        model, the optimizer's state and hyperparameters, and the bookkeeping."""
        rows = self.flat.shape[0]
        size = aligned_size(self.running_count)
        if size >= rows:
            return
        order = torch.argsort((~self.running).to(torch.int8), stable=True)
        keep = order[:size]
        with torch.no_grad():
            self.flat.data = self._laid_out(self.flat.data[keep])
        self.flat.grad = None
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == rows:
                    state[key] = self._laid_out(value[keep])
        for group in self.optimizer.param_groups:
            for key, value in group.items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == rows:
                    group[key] = value[keep]
            if group.get("members") == rows:
                group["members"] = size
        for name in ("seeds", "index", "running", "best", "improved_at"):
            setattr(self, name, getattr(self, name)[keep])
        if self.pending is not None:
            self.pending.keep(keep)
        self.compactions += 1

    def _laid_out(self, tensor: Tensor) -> Tensor:
        """``tensor`` in the population's layout: column-major where the compiled pass
        runs and ``tensor`` is shaped like ``flat``."""
        if self.unrolled_gradient is None or tensor.shape != self.flat.shape:
            return tensor
        return unrolled.column_major(tensor)

    def _record(self, epoch: int, losses: Tensor, weights: Tensor | None = None,
                running_rows: Tensor | None = None,
                state_telemetry: list[dict[str, float]] | None = None) -> None:
        """Record ``epoch`` in the history if it is due: ``losses`` and ``weights`` (default:
        now) at that epoch, over ``running_rows`` (default: now), with ``state_telemetry``
        if it was taken before now."""
        if not self.history.due(epoch):
            return
        if running_rows is None:
            running_rows = self.running.nonzero().squeeze(1)
        if running_rows.numel():  # none: every member stopped, their stops pending
            self.history.record(epoch, losses, running_rows, self.index,
                                self.flat if weights is None else weights, state_telemetry)

    def _batch_quantity(self, outputs: Tensor, targets: Tensor | None,
                        losses: Tensor) -> Tensor | None:
        """The stop rule's quantity over the whole training set (None without a target)."""
        if self.config.stop.target is None:
            return None
        return self._quantity(self._quantity_sum(outputs, targets, losses))

    def _step(self, losses: Tensor, reevaluate: Callable[[], Tensor]) -> None:
        first = [losses]

        def closure() -> Tensor:
            return first.pop() if first else reevaluate()

        self.optimizer_step(closure)

    # -- the loop ----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.running_count == 0

    def advance(self, epochs: int | None = None) -> bool:
        """Train up to ``epochs`` more epochs (None: to the end); True once every member
        has stopped. Between calls the training can be saved (``state_dict``)."""
        if self.finished:
            return True
        last = self.config.stop.max_epochs if epochs is None else self.epoch + epochs - 1
        last = min(last, self.config.stop.max_epochs)
        self.segment_start = time.perf_counter()
        if self.config.mode == "batch":
            self._run_batch(last)
        else:
            self._run_epochs(last)
        self.elapsed += time.perf_counter() - self.segment_start
        return self.finished

    def run(self) -> TrainResult:
        self.advance()
        return self.result()

    def interim_summary(self) -> dict[str, Any]:
        """Metrics so far, counting members still running as not converged: what a
        scheduler such as ASHA compares between trials at the same epoch."""
        converged = self.out_status == CONVERGED
        epochs = torch.where(converged, self.out_epochs, self.config.stop.max_epochs)
        return {"epoch": self.epoch, "members": self.members,
                "success_rate": float(converged.double().mean()),
                "epochs_penalised_mean": float(epochs.double().mean()),
                "diverged_rate": float((self.out_status == DIVERGED).double().mean()),
                "running": self.running_count}

    _ROW_STATE = ("seeds", "index", "running", "best", "improved_at")
    _MEMBER_STATE = ("out_status", "out_epochs", "out_quantity", "out_time", "out_weights")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this training elsewhere (``load_state_dict``),
        between two ``advance`` calls; tensors on the CPU."""
        return {
            "epoch": self.epoch, "elapsed": self.elapsed, "compactions": self.compactions,
            "running_count": self.running_count, "flat": self.flat.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "rows": {name: getattr(self, name).cpu() for name in self._ROW_STATE},
            "members": {name: getattr(self, name).cpu() for name in self._MEMBER_STATE},
            "history": self.history.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of a training of the same config and seeds."""
        device = self.flat.device
        rows = state["flat"].shape[0]
        with torch.no_grad():
            self.flat.data = state["flat"].to(device)
            self.flat.data = self._laid_out(self.flat.data)
        self.flat.grad = None
        for group in self.optimizer.param_groups:
            if group.get("members") is not None:
                group["members"] = rows
        self.optimizer.load_state_dict(state["optimizer"])
        for values in self.optimizer.state.values():
            for key, value in values.items():
                if isinstance(value, Tensor):
                    values[key] = self._laid_out(value)
        for name in self._ROW_STATE:
            setattr(self, name, state["rows"][name].to(device))
        for name in self._MEMBER_STATE:
            setattr(self, name, state["members"][name].to(device))
        self.epoch, self.elapsed = int(state["epoch"]), float(state["elapsed"])
        self.compactions, self.running_count = state["compactions"], state["running_count"]
        if self.pending is not None:  # the saved rows (nothing is pending between advances)
            self.pending = PendingStops(self.flat.detach(), self.flat.dtype)
        self.history.load_state_dict(state["history"])

    def _full_set(self) -> tuple[Tensor | None, Tensor | None]:
        if self.dataset is None:
            return None, None
        return self.dataset.inputs, self.dataset.targets

    def _gradient_max(self) -> Tensor:
        assert self.flat.grad is not None
        return self.flat.grad.abs().amax(dim=1)

    def _run_batch(self, last: int) -> None:
        """Epochs ``self.epoch``..``last``: evaluate at w_epoch, stop check, update."""
        inputs, targets = self._full_set()
        stop = self.config.stop

        def reevaluate() -> Tensor:
            return self._evaluate(inputs, targets)[1]

        while self.epoch <= last:
            epoch = self.epoch
            self.epoch += 1
            if self.fused_update:
                assert inputs is not None and targets is not None
                self._fused_epoch(epoch, inputs, targets)
            else:
                outputs, losses = self._evaluate(inputs, targets)
                gradient_max = self._gradient_max() if stop.gradient_below is not None else None
                self._record(epoch, losses)
                self._settle(epoch, self._batch_quantity(outputs, targets, losses),
                             gradient_max, self._finite(losses))
            if self.pending is not None and (epoch % self.check_every == 0 or epoch == last
                                             or epoch >= stop.max_epochs):
                self._take_pending()
            if not self.running_count:
                return
            if self.fused_update:  # updated already
                continue
            if self.flat.grad is None:  # compacted: the gradient of the kept rows
                outputs, losses = self._evaluate(inputs, targets)
            self._step(losses, reevaluate)

    def _fused_epoch(self, epoch: int, inputs: Tensor, targets: Tensor) -> None:
        """One batch epoch in one compiled kernel: evaluate at w_epoch and update to
        w_epoch+1, then record and check the stop rule at w_epoch. Every row is updated
        before the check instead of after it: rows are independent, so a stopping member's
        outcome (taken at w_epoch) is the same, and a row that stopped is never read again.
        Telemetry due at this epoch is taken before the update, as the unfused epoch takes it.
        """
        assert isinstance(self.optimizer, Rprop) and self.layout is not None
        running_rows = None
        state_telemetry = None
        if self.history.due(epoch):
            running_rows = self.running.nonzero().squeeze(1)
            state_telemetry = self.history.state_telemetry(running_rows, self.index)
        # self.best: one value per row in the weights' dtype, the losses' shape (iRprop+)
        update, arguments = self.optimizer.step_parts(
            self.flat, self.optimizer.param_groups[0], self.best, as_tensors=True)
        before = self.flat.detach()
        if self.epoch_kernel is None:
            self.epoch_kernel = compiled_epoch(self.layout, self.config.loss, update,
                                               variant_of(before, arguments))
        outputs, losses, finite, stepped, returned = self.epoch_kernel(before, inputs, targets,
                                                                       *arguments)
        self.optimizer.step_done(self.flat, returned)
        self.flat.data = stepped
        self.flat.grad = None
        self._record(epoch, losses, before, running_rows, state_telemetry)
        self._settle(epoch, self._batch_quantity(outputs, targets, losses), None, finite,
                     weights=before)

    def _run_epochs(self, last: int) -> None:
        """Online and mini-batch learning: several optimizer steps per epoch. Epoch 0 is the
        check before training (where the stop rule evaluates the whole set)."""
        assert self.dataset is not None
        inputs, targets = self.dataset.inputs, self.dataset.targets
        stop = self.config.stop
        evaluation = self.evaluation
        if self.epoch == 0:
            self.epoch = 1
            if evaluation == "end_of_epoch" or stop.gradient_below is not None:
                self._check_full_set(0, evaluation)
            else:
                self._record(0, self._losses_now())
            if not self.running_count:
                return
        while self.epoch <= last:
            epoch = self.epoch
            self.epoch += 1
            presented = torch.zeros_like(self.best)
            finite = torch.ones_like(self.running)
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
                self._record(epoch, self._losses_now() if self.history.due(epoch) else presented)
                self._settle(epoch, quantity, None, finite & self._finite(presented))
            else:
                self._check_full_set(epoch, evaluation, presented, finite)
            if not self.running_count:
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
        self._record(epoch, losses)
        self._settle(epoch, quantity, gradient_max, all_finite)

    # -- the result --------------------------------------------------------------------
    def result(self) -> TrainResult:
        """Evaluate every member at its recorded final weights and collect the outcomes."""
        if not self.finished:
            raise RuntimeError("the training has not finished: advance() it to the end first")
        size = aligned_size(self.members)
        final = torch.cat([self.out_weights,
                           self.out_weights[-1:].expand(size - self.members, -1)])
        with torch.no_grad():
            self.flat.data = final
            inputs, targets = self._full_set()
            outputs = self._outputs(inputs)
            final_loss = self._losses(outputs, targets)[: self.members]
            outputs = outputs[: self.members]
        status = self.out_status.tolist()
        train_accuracy = validation_accuracy = None
        if self.dataset is not None and self.dataset.kind != "regression":
            train_accuracy = tasks.accuracy(outputs, self.dataset.targets,
                                            self.dataset.kind).tolist()
            if self.dataset.validation_inputs is not None:
                assert self.dataset.validation_targets is not None
                with torch.no_grad():
                    validation = self._outputs(self.dataset.validation_inputs)[: self.members]
                validation_accuracy = tasks.accuracy(validation, self.dataset.validation_targets,
                                                     self.dataset.kind).tolist()
        times = [t if code == CONVERGED else None
                 for code, t in zip(status, self.out_time.tolist(), strict=True)]
        return TrainResult(
            config=self.config,
            seeds=self.member_seeds,
            status=[STATUSES[code] for code in status],
            epochs=self.out_epochs.tolist(),
            final_loss=final_loss.tolist(),
            final_quantity=self.out_quantity.tolist(),
            time_to_target_s=times,
            initial_weights=self.initial_weights,
            final_weights=self.out_weights.to("cpu", copy=True),
            model=self.model,
            wall_time_s=self.elapsed,
            device=str(self.flat.device),
            evaluation=self.evaluation,
            history_epochs=list(self.history.epochs),
            history_loss=torch.stack(self.history.loss).cpu() if self.history.loss else None,
            history_telemetry=self.history.telemetry_series(),
            history_weights=(torch.stack(self.history.weights)
                             if self.history.weights else None),
            train_accuracy=train_accuracy,
            validation_accuracy=validation_accuracy,
            compactions=self.compactions,
        )

    def group_results(self, configs: Sequence[TrainConfig]) -> list[TrainResult]:
        """One result per group (``configs[g]`` is group g's configuration), each what that
        configuration trained alone over its seeds reports: its members, loss history,
        telemetry and trajectories. Wall time and compactions are the population's."""
        groups, per_group = self.history.groups, self.history.per_group
        if len(configs) != groups:
            raise ValueError(f"{len(configs)} configurations for {groups} groups")
        whole = self.result()
        size = self.members // groups
        return [whole.part(slice(g * size, (g + 1) * size), config=configs[g],
                           telemetry=self.history.telemetry_series(g),
                           trajectory=slice(g * per_group, (g + 1) * per_group))
                for g in range(groups)]
