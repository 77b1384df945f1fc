"""What a training keeps of its course, at most ``points`` epochs of it: every member's loss,
the optimizer-state telemetry, and for function tasks the first members' weights (the
trajectory a contour plot draws). A stopped member keeps its last recorded values.

A population may hold ``groups`` configurations (consecutive, equal blocks of members, e.g.
several Optuna trials trained at once): the telemetry and the trajectories are then kept per
group, as if each group had trained alone."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from studies.engine import telemetry

TRAJECTORY_MEMBERS = 64
"""Function tasks: the weights of this many members (the first) are kept every record."""


class History:
    def __init__(self, *, points: int, max_epochs: int, members: int, optimizer: Optimizer,
                 flat: Tensor, trajectory: bool, groups: int = 1):
        self.every = max(1, math.ceil((max_epochs + 1) / points)) if points > 0 else 0
        self.max_epochs = max_epochs
        self.optimizer = optimizer
        self.epochs: list[int] = []
        self.loss: list[Tensor] = []
        self.groups = groups
        self.group_size = members // groups
        self.telemetry: list[list[dict[str, float]]] = []
        """Per record, per group: the telemetry of that group's running rows."""
        self.weights: list[Tensor] = []
        self.last_loss = torch.full((members,), math.nan, dtype=torch.float32,
                                    device=flat.device)
        self.per_group = per_group = min(self.group_size, TRAJECTORY_MEMBERS) if trajectory else 0
        self.tracked = torch.cat([torch.arange(per_group) + g * self.group_size
                                  for g in range(groups)]).to(flat.device)
        """The members whose weights are kept: the first of each group."""
        self.last_weights = flat.detach().index_select(0, self.tracked).clone()
        if self.every:
            telemetry.enable(optimizer)

    def due(self, epoch: int) -> bool:
        return bool(self.every) and (epoch % self.every == 0 or epoch == self.max_epochs)

    def record(self, epoch: int, losses: Tensor, running_rows: Tensor, index: Tensor,
               flat: Tensor, state_telemetry: list[dict[str, float]] | None = None) -> None:
        """Record ``epoch`` if it is due: ``index[row]`` is the member a row trains.
        ``state_telemetry``: the optimizer's telemetry at this epoch, if taken before now
        (``state_telemetry``; by default it is taken now)."""
        if not self.due(epoch):
            return
        members = index.index_select(0, running_rows)
        self.last_loss[members] = losses.index_select(0, running_rows).to(torch.float32)
        self.epochs.append(epoch)
        self.loss.append(self.last_loss.clone())
        self.telemetry.append(state_telemetry if state_telemetry is not None
                              else self.state_telemetry(running_rows, index))
        if self.tracked.numel():
            # a running member's place among the tracked ones, if it is one of them
            within = members % self.group_size
            keep = within < self.per_group
            slot = torch.div(members, self.group_size, rounding_mode="floor") * self.per_group \
                + within
            self.last_weights[slot[keep]] = flat.detach().index_select(
                0, running_rows[keep]).to(self.last_weights.dtype)
            self.weights.append(self.last_weights.to("cpu", copy=True))

    def state_telemetry(self, running_rows: Tensor, index: Tensor) -> list[dict[str, float]]:
        """The optimizer's telemetry now, per group, over its running rows."""
        group = torch.div(index.index_select(0, running_rows), self.group_size,
                          rounding_mode="floor")
        return telemetry.by_group(self.optimizer, running_rows, group, self.groups)

    def telemetry_series(self, group: int = 0) -> dict[str, list[float]]:
        """Each telemetry quantity of ``group`` over the recorded epochs (NaN where it had
        no value)."""
        records = [per_group[group] for per_group in self.telemetry]
        names = sorted({name for values in records for name in values})
        return {name: [values.get(name, math.nan) for values in records] for name in names}

    def state_dict(self) -> dict[str, Any]:
        """The course so far, as few objects as possible (a checkpoint is written every
        second or so, and pickling thousands of small floats cost more than the tensors):
        the telemetry as one table [records, groups, quantities] (NaN: no value)."""
        names = sorted({name for per_group in self.telemetry for values in per_group
                        for name in values})
        table = torch.tensor([[[values.get(name, math.nan) for name in names]
                               for values in per_group] for per_group in self.telemetry],
                             dtype=torch.float64)
        present = torch.tensor([[[name in values for name in names] for values in per_group]
                                for per_group in self.telemetry], dtype=torch.bool)
        return {"epochs": torch.tensor(self.epochs, dtype=torch.int64),
                "loss": (torch.stack(self.loss).cpu() if self.loss
                         else torch.zeros(0, self.last_loss.numel())),
                "telemetry_names": names, "telemetry": table, "telemetry_present": present,
                "weights": (torch.stack(self.weights) if self.weights
                            else torch.zeros(0, *self.last_weights.shape)),
                "last_loss": self.last_loss.cpu(), "last_weights": self.last_weights.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.last_loss.device
        if isinstance(state["loss"], list):  # saved by optistudy before the tables
            self.epochs = list(state["epochs"])
            self.loss = [loss.to(device) for loss in state["loss"]]
            self.telemetry = [[dict(values) for values in per_group]
                              for per_group in state["telemetry"]]
            self.weights = list(state["weights"])
        else:
            self.epochs = [int(epoch) for epoch in state["epochs"].tolist()]
            self.loss = list(state["loss"].to(device).unbind(0))
            names = state["telemetry_names"]
            self.telemetry = [
                [{name: value for name, value, kept in zip(names, values, present, strict=True)
                  if kept} for values, present in zip(group_values, group_present, strict=True)]
                for group_values, group_present in zip(
                    state["telemetry"].tolist(), state["telemetry_present"].tolist(),
                    strict=True)]
            self.weights = list(state["weights"].unbind(0))
        self.last_loss = state["last_loss"].to(device)
        self.last_weights = state["last_weights"].to(device)
