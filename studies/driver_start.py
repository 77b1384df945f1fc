"""A study driver's start-up: Ray's start overlapped with the driver's imports and checks.

Starting a local Ray takes seconds, most of them waiting for the processes it starts;
importing the driver's modules (torch, Ray Tune, Optuna, MLflow) and checking the spec take
seconds of CPU. ``begin`` starts Ray on a thread of its own and returns at once; ``connect``
waits for it where the study first needs Ray. The thread is kept alive for the process's
life: the processes a local Ray starts are bound to die with the thread that started them
(Linux's parent-death signal follows the thread). A driver that stops before ``connect``
(a spec refused) leaves them to die with it.

This module imports only Ray's core, so that it can run before the heavy imports.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray

_starting: threading.Thread | None = None
_started = threading.Event()
_failures: list[BaseException] = []
seconds_to_start: float | None = None
"""How long the last ``begin`` took to start (or join) Ray, once it has."""


def _init(address: str | None) -> None:
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    if target == "local":
        options["include_dashboard"] = False
    ray.init(address=target, **options)


def begin(address: str | None) -> None:
    """Start joining the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else starting a
    local one, on a thread; nothing when this process is connected or connecting already."""
    global _starting, _started
    if _starting is not None or ray.is_initialized():
        return
    _started, _failures[:] = threading.Event(), []
    started = _started

    def start() -> None:
        global seconds_to_start
        began = time.perf_counter()
        try:
            _init(address)
        except BaseException as error:  # raised by connect, in the caller's thread
            _failures.append(error)
        seconds_to_start = time.perf_counter() - began
        started.set()
        threading.Event().wait()  # never returns: the parent thread of Ray's processes

    _starting = threading.Thread(target=start, name="ray-start", daemon=True)
    _starting.start()


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one:
    wait for ``begin``'s start if there was one (raising its error), or start now; nothing
    when this process is connected already."""
    global _starting
    if _starting is not None:
        _started.wait()
        _starting = None
        if _failures:
            raise _failures.pop()
    if ray.is_initialized():
        return
    _init(address)
