"""Benchmark suites shipped with optistudy: ``classic``, every training algorithm with pinned
hyperparameters on XOR, parity-4, the 10-5-10 encoder, two spirals and digits."""

from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    """The shipped suites' names (file names without ``.yaml``), sorted."""
    return sorted(entry.name.removesuffix(".yaml") for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".yaml"))
