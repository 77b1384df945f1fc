"""What a benchmark result depends on besides the suite: the environment it ran in (code
version, library versions, hardware, threads, determinism flags), and digests of the suite's
entries that tell whether two runs trained the same configurations."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studies.engine import TrainConfig

_REPOSITORY = Path(__file__).resolve().parents[2]


def environment(device: str = "cpu") -> dict[str, Any]:
    """The process's environment as plain values: the optistudy commit (None outside a git
    checkout; ``optistudy_dirty`` when tracked files have uncommitted changes), Python,
    torch and numpy versions, the CPU model, the training device, torch's thread counts and
    determinism flags."""
    return {
        "optistudy_commit": _git("rev-parse", "HEAD"),
        "optistudy_dirty": _dirty(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": _cpu_model(),
        "device": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fields two environments disagree on: ``{field: (before, after)}``."""
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def config_digest(config: TrainConfig) -> str:
    """A digest of everything an entry's config pins but its seeds (compared on their own):
    the fields a suite sets, not the defaults it leaves to the code, so that a changed
    default (in the engine or an optimizer) is a change the check measures, not a change of
    the suite."""
    pinned = config.model_dump(mode="json", exclude_defaults=True, exclude={"seeds"})
    return _sha256(pinned)


def suite_digest(entries: dict[str, str]) -> str:
    """A digest of a suite's entries: their ids and config digests."""
    return _sha256(entries)


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _git(*arguments: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_REPOSITORY), *arguments], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dirty() -> bool | None:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name()}"
    return device
