"""Compare training algorithms on one task: the same seeds for every arm, one table.

A comparison file holds ``base`` (every TrainConfig field but the optimizer) and ``arms``:
a name per arm mapped to the fields it sets over the base (at least its ``optimizer``).
Every arm trains the same seeds, so seed s starts from the same weights in every arm whose
architecture matches (paired seeds).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from studies.engine import TrainConfig, TrainResult, train
from studies.specs import SpecError, parse, read_yaml
from studies.text_table import text_table

DEFAULT = "xor-algorithms.yaml"


class Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    description: str = ""
    base: dict[str, Any]
    arms: dict[str, dict[str, Any]] = Field(min_length=1)

    def configs(self, seeds: int | None = None) -> dict[str, TrainConfig]:
        """Each arm's full configuration, validated (errors name the arm's field)."""
        configs = {}
        for arm, overrides in self.arms.items():
            data = {**self.base, **overrides}
            if seeds is not None:
                data["seeds"] = seeds
            configs[arm] = parse(TrainConfig, data, f"arms.{arm}")
        return configs


def load(path: Path | None = None) -> Comparison:
    """A comparison file, or the embedded default (the lecture's algorithms on XOR)."""
    if path is None:
        text = resources.files("studies.examples").joinpath(DEFAULT)
        with resources.as_file(text) as embedded:
            return parse(Comparison, read_yaml(embedded), DEFAULT)
    return parse(Comparison, read_yaml(path), str(path))


def run(comparison: Comparison, seeds: int | None = None) -> dict[str, TrainResult]:
    configs = comparison.configs(seeds)  # validate every arm before anything runs
    return {arm: train(config) for arm, config in configs.items()}


def table(results: dict[str, TrainResult]) -> str:
    """A plain-text table: one row per arm."""
    header = ("arm", "success", "epochs median", "epochs p90", "diverged", "time to target",
              "wall s")
    rows = [header]
    for arm, result in results.items():
        s = result.summary()
        rows.append((
            arm,
            f"{s['success_rate']:.0%} of {s['members']}",
            _number(s["epochs_to_target_median"]),
            _number(s["epochs_to_target_p90"]),
            f"{s['diverged_rate']:.0%}",
            _seconds(s["time_to_target_s_median"]),
            f"{s['wall_time_s']:.2f}",
        ))
    return text_table(rows)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


__all__ = ["Comparison", "SpecError", "load", "run", "table"]
