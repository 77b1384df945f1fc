"""The processes a test started, found through /proc: a session's members whatever their
process group (Ray puts each worker in a group of its own, so ``os.killpg`` of the session
leader's group misses them), and stopping them all."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest


def session_members(session: int, marker: str | None = None) -> list[int]:
    """The live processes (zombies left out) of ``session``; with ``marker``, only those
    whose command line contains it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # after the command's closing parenthesis: state, ppid, pgrp, session, ...
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if fields[0] == "Z" or int(fields[3]) != session:
                continue
            if marker is not None and marker not in (
                    entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def kill_session(session: int, seconds: float = 30) -> None:
    """SIGKILL every process of ``session`` until none is left."""
    deadline = time.monotonic() + seconds
    while members := session_members(session):
        if time.monotonic() > deadline:
            pytest.fail(f"processes {members} of session {session} are still alive")
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
