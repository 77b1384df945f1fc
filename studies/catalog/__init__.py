"""Example studies shipped with optistudy: the lecture's XOR comparison of every algorithm,
and smaller comparisons on parity-4, the 10-5-10 encoder, two spirals and digits."""

from __future__ import annotations

from importlib import resources

from studies.specs import parse, read_yaml
from studies.study import StudySpec


def names() -> list[str]:
    """The catalog's study names (file names without ``.yaml``), sorted."""
    return sorted(entry.name.removesuffix(".yaml") for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".yaml"))


def load(name: str) -> StudySpec:
    """The catalog study called ``name``, validated."""
    if name not in names():
        raise ValueError(f"Unknown catalog study {name!r} (allowed: {', '.join(names())})")
    with resources.as_file(resources.files(__name__) / f"{name}.yaml") as path:
        return parse(StudySpec, read_yaml(path), f"catalog/{name}.yaml")
