"""torch.compile where it works, eager where it does not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)


def compiled(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``torch.compile(function)``, falling back to ``function`` (with a warning) when
    compilation fails, e.g. where no C++ compiler or Triton is present. Compilation happens
    on the first call, so that is where a failure shows."""
    try:
        fast = torch.compile(function)
    except Exception as error:  # any failure means: run eager
        log.warning("torch.compile unavailable for %s (%s); running eager", name, error)
        return function
    chosen: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if chosen:
            return chosen[0](*args, **kwargs)
        try:
            result = fast(*args, **kwargs)
        except Exception as error:  # any failure means: run eager
            log.warning("torch.compile failed for %s (%s); running eager", name, error)
            chosen.append(function)
            return function(*args, **kwargs)
        chosen.append(fast)
        return result

    return call
