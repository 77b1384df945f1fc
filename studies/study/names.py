"""Names of studies, arms and task labels: they become Optuna study names, MLflow run names
and file names, so they are kept to a safe alphabet."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
ALLOWED = "1 to 100 of the characters A-Z a-z 0-9 _ . -, not only dots"


def check_name(value: str) -> str:
    """``value`` if it is a safe name, else a ValueError saying what is allowed."""
    if not _NAME.fullmatch(value) or not value.strip("."):
        raise ValueError(f"name {value!r} is not allowed (allowed: {ALLOWED})")
    return value


Name = Annotated[str, AfterValidator(check_name)]
"""``[A-Za-z0-9_.-]{1,100}``, and not only dots (``.`` and ``..`` are path components)."""
