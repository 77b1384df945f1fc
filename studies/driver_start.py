"""A study driver's start-up: Ray's start overlapped with the driver's imports.

Starting a local Ray takes seconds, most of them waiting for the processes it starts;
importing the driver's modules (torch, Ray Tune, Optuna, MLflow) takes seconds of CPU.
``connect_while_importing`` does both at once: the imports on a thread, Ray's start on the
calling thread. Not the other way round: the processes Ray starts are bound to die with the
thread that started them (Linux's parent-death signal follows the thread), so a local Ray
must be started by a thread that outlives the study, the main one.

This module imports only Ray's core, so that it can run before the heavy imports.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ray

log = logging.getLogger(__name__)

DRIVER_MODULES = ("studies.study.runner", "studies.study.table")
"""What a study driver imports: the runner (Ray Tune, Optuna, MLflow, the engine)."""


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one;
    nothing when this process is connected already."""
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    if target == "local":
        options["include_dashboard"] = False
    ray.init(address=target, **options)


def import_modules(modules: Sequence[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def connect_while_importing(address: str | None, modules: Sequence[str] = DRIVER_MODULES,
                            then: Callable[[], object] | None = None) -> None:
    """Import ``modules`` (and then call ``then``, e.g. create a store) on a thread while
    this thread connects to Ray (``connect``); call it from the main thread. An import's
    error is raised here, after Ray is up; an error of ``then`` is only logged, for the
    caller to meet again where it does that work itself."""
    failures: list[BaseException] = []

    def load() -> None:
        try:
            import_modules(modules)
        except BaseException as error:  # raised in the caller's thread
            failures.append(error)
            return
        if then is not None:
            try:
                then()
            except Exception as error:  # done again, and its error raised, by the caller
                log.debug("left for later: %r", error)

    loading = threading.Thread(target=load, name="driver-imports", daemon=True)
    loading.start()
    try:
        connect(address)
    finally:
        loading.join()
    if failures:
        raise failures[0]
