"""The population training engine: one configuration over many seeds, as one tensor program."""

from studies.engine.config import TrainConfig
from studies.engine.result import STATUSES, TrainResult
from studies.engine.trainer import Training, train

__all__ = ["STATUSES", "TrainConfig", "TrainResult", "Training", "train"]
