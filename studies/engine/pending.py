"""Stops decided on the device and read by the host only every few epochs.

On a GPU, reading whether anyone stopped (a ``bool`` of a device tensor) waits for every
kernel queued before it, so the host can never run ahead of the device: each epoch pays the
host's per-epoch work and the device's, one after the other. ``PendingStops`` keeps, per row,
what the stop rule decided (status, epoch, stop quantity, the weights at that epoch and when
the epoch finished) on the device, so the host reads them once per window of epochs. A row
marked stopped is taken out of ``running`` at once, so it is marked once; what the member
reports is what the per-epoch check records: the same status, epoch, quantity and weights.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

RUNNING = -1


class EpochClock:
    """When each marked epoch's work finished, as ``time.perf_counter()`` values.

    On the CPU the work is done when the host marks it. On a GPU an event is recorded into
    the stream, and its time is read back once the window's work is done."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.host: dict[int, float] = {}
        self.events: list[tuple[int, torch.cuda.Event]] = []

    def mark(self, epoch: int) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))  # the training's device
            self.events.append((epoch, event))
        else:
            self.host[epoch] = time.perf_counter()

    def finished_at(self) -> dict[int, float]:
        """Every marked epoch's finishing time; forgets them."""
        if self.events:
            last = self.events[-1][1]
            last.synchronize()
            now = time.perf_counter()
            self.host.update({epoch: now - event.elapsed_time(last) / 1000.0
                              for epoch, event in self.events})
            self.events = []
        times, self.host = self.host, {}
        return times


class PendingStops:
    """Per row: the stop decided since the last ``take`` (status ``RUNNING``: none)."""

    def __init__(self, weights: Tensor, quantity_dtype: torch.dtype):
        rows, device = weights.shape[0], weights.device
        self.code = torch.full((rows,), RUNNING, dtype=torch.int64, device=device)
        self.epoch = torch.zeros(rows, dtype=torch.int64, device=device)
        self.quantity = torch.full((rows,), math.nan, dtype=quantity_dtype, device=device)
        self.weights = torch.zeros_like(weights)
        self.clock = EpochClock(device)

    def mark(self, epoch: int, stopping: Tensor, code: Tensor, quantity: Tensor | None,
             weights: Tensor) -> None:
        """Rows ``stopping`` stop at ``epoch`` with ``code``, ``quantity`` and ``weights``."""
        self.code = torch.where(stopping, code, self.code)
        self.epoch = torch.where(stopping, epoch, self.epoch)
        if quantity is not None:
            self.quantity = torch.where(stopping, quantity.to(self.quantity.dtype),
                                        self.quantity)
        self.weights = torch.where(stopping.unsqueeze(1), weights, self.weights)
        self.clock.mark(epoch)

    def take(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, list[float]]:
        """The rows that stopped since the last take, each with its status, epoch, quantity,
        weights and finishing time; forgets them."""
        rows = (self.code != RUNNING).nonzero().squeeze(1)
        finished_at = self.clock.finished_at()
        epochs = self.epoch[rows]
        taken = (rows, self.code[rows], epochs, self.quantity[rows], self.weights[rows],
                 [finished_at[epoch] for epoch in epochs.tolist()])
        self.code[rows] = RUNNING
        return taken

    def keep(self, rows: Tensor) -> None:
        """Keep only ``rows`` (after a ``take``: nothing is pending)."""
        self.code, self.epoch = self.code[rows], self.epoch[rows]
        self.quantity, self.weights = self.quantity[rows], self.weights[rows]
