"""The files a finished trial leaves (in its final Ray checkpoint, then as MLflow
artifacts): ``result.json`` (configuration, summary, per-seed outcomes), ``seeds.csv`` (the
per-seed results table), ``history.npz`` (per-seed loss curves, optimizer telemetry,
function-task trajectories) and ``weights.npz`` (initial and final weights of every seed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from studies.engine import TrainResult

RESULT_FILE = "result.json"
SEEDS_FILE = "seeds.csv"
HISTORY_FILE = "history.npz"
WEIGHTS_FILE = "weights.npz"
TELEMETRY_PREFIX = "telemetry."
_SEED_COLUMNS = ("seed", "status", "epochs", "final_loss", "final_quantity",
                 "time_to_target_s", "train_accuracy", "validation_accuracy")


def write(result: TrainResult, folder: Path) -> None:
    record = result.to_json(weights=False)  # the weights are in weights.npz
    members: list[dict[str, Any]] = record["members"]
    (folder / RESULT_FILE).write_text(json.dumps(record))
    columns = [c for c in _SEED_COLUMNS if any(c in member for member in members)]
    with (folder / SEEDS_FILE).open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(members)
    loss = (result.history_loss.numpy() if result.history_loss is not None
            else np.zeros((0, result.members), dtype=np.float32))
    history: dict[str, Any] = {"epochs": np.array(result.history_epochs, dtype=np.int64),
                               "loss": loss}
    history.update({TELEMETRY_PREFIX + name: np.array(values, dtype=np.float64)
                    for name, values in result.history_telemetry.items()})
    if result.history_weights is not None:
        history["trajectory"] = result.history_weights.numpy()
    np.savez_compressed(folder / HISTORY_FILE, **history)
    np.savez_compressed(folder / WEIGHTS_FILE, seeds=np.array(result.seeds, dtype=np.int64),
                        initial=result.initial_weights.numpy(),
                        final=result.final_weights.numpy())

