"""What a benchmark run leaves: per entry, each seed's outcome (status, epochs, final loss),
and the environment it ran in. A baseline is one of these runs, whole: the per-seed
distribution, not a summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from studies.engine import TrainResult


@dataclass(frozen=True)
class EntryResult:
    """One entry's outcome on each of its seeds (columns in seed order)."""

    entry: str
    digest: str
    """``fingerprint.config_digest`` of the entry's config."""
    config: dict[str, Any]
    seeds: list[int]
    status: list[str]
    epochs: list[int]
    final_loss: list[float | None]
    """None where the loss was not finite (a diverged member)."""
    time_to_target_s: list[float | None]
    summary: dict[str, Any]
    """``TrainResult.summary()`` (DESIGN.md's metric names)."""
    environment: dict[str, Any]
    """The worker's ``fingerprint.environment()``."""

    @classmethod
    def of(cls, entry: str, digest: str, result: TrainResult,
           environment: dict[str, Any]) -> EntryResult:
        record = result.to_json(weights=False)
        members = record["members"]
        return cls(entry=entry, digest=digest, config=record["config"], seeds=result.seeds,
                   status=result.status, epochs=result.epochs,
                   final_loss=[m["final_loss"] for m in members],
                   time_to_target_s=result.time_to_target_s, summary=record["summary"],
                   environment=environment)

    @property
    def converged(self) -> list[bool]:
        return [status == "converged" for status in self.status]

    @property
    def max_epochs(self) -> int:
        return int(self.config["stop"]["max_epochs"])

    def members(self) -> list[dict[str, Any]]:
        """One row per seed: seed, status, epochs, final loss, time to target."""
        return [{"seed": seed, "status": status, "epochs": epochs, "final_loss": loss,
                 "time_to_target_s": time}
                for seed, status, epochs, loss, time in zip(
                    self.seeds, self.status, self.epochs, self.final_loss,
                    self.time_to_target_s, strict=True)]

    def outcomes(self) -> list[tuple[str, int, float | None]]:
        """Per seed what must be exactly equal in a deterministic re-run."""
        return list(zip(self.status, self.epochs, self.final_loss, strict=True))


@dataclass(frozen=True)
class BenchRun:
    """One run of a suite: its id (sortable by time), the digest of the entries it ran, the
    driver's environment and every entry's result, in the suite's order."""

    suite: str
    run_id: str
    created: str
    """ISO 8601, UTC."""
    suite_digest: str
    environment: dict[str, Any]
    entries: dict[str, EntryResult]
    mlflow_run_id: str | None = None
    wall_time_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["entries"] = [asdict(result) for result in self.entries.values()]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRun:
        entries = {record["entry"]: EntryResult(**record) for record in data["entries"]}
        return cls(**{**data, "entries": entries})
