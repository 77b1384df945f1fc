"""Where a study's state lives: the data dir (``OPTISTUDY_HOME``, default ``./.optistudy``)
holds the Optuna storage, Ray Tune's experiment dirs and one folder per study."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.study.names import check_name


@dataclass(frozen=True)
class Home:
    """The data dir and the stores under it; each can be pointed elsewhere by a setting."""

    root: Path

    @classmethod
    def from_environment(cls) -> Home:
        return cls(Path(os.environ.get("OPTISTUDY_HOME", ".optistudy")).resolve())

    @property
    def optuna_storage(self) -> str:
        """``OPTISTUDY_OPTUNA_STORAGE`` (e.g. a PostgreSQL URL) or a SQLite file here,
        created whole on first use once the data dir exists."""
        configured = os.environ.get("OPTISTUDY_OPTUNA_STORAGE")
        if configured:
            return configured
        store = self.root / "optuna.db"
        if self.root.is_dir() and not store.exists():
            _create_optuna_store(store)
        return f"sqlite:///{store}"

    @property
    def ray_results(self) -> Path:
        return self.root / "ray"

    def study_dir(self, name: str) -> Path:
        """The folder of study ``name``; the name is checked, so it cannot leave the data
        dir."""
        return self.root / "studies" / check_name(name)

    def studies(self) -> list[str]:
        folder = self.root / "studies"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _create_optuna_store(store: Path) -> None:
    """Create the SQLite Optuna storage whole or not at all: Optuna builds its schema in
    several steps, and two processes opening a new file at once (a driver and the service, or
    a reader) both try to stamp it. The schema is built in a file of this process's own, then
    linked into place, which fails harmlessly if another process got there first."""
    import optuna  # here: most users of Home never open the storage

    with tempfile.TemporaryDirectory(dir=store.parent, prefix=".optuna-") as folder:
        building = Path(folder) / "optuna.db"
        storage = optuna.storages.RDBStorage(f"sqlite:///{building}")
        storage.engine.dispose()
        with contextlib.suppress(FileExistsError):
            os.link(building, store)


def process_alive(pid: int | None) -> bool:
    """Whether a process ``pid`` exists (None or ≤ 0: no; os.kill(-1, 0) would ask about
    every process)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def study_state(home: Home, name: str) -> str:
    """created, running, interrupted (its driver died: resume it), complete, or unknown (no
    status recorded)."""
    path = home.study_dir(name) / "status.json"
    status = read_json(path) if path.exists() else {}
    current = str(status.get("state", "unknown"))
    if current == "running" and not process_alive(int(status.get("driver_pid", -1))):
        return "interrupted"
    return current


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    temporary.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
