"""Ray heads the tests start on this machine: ``ray start --head --block`` in a session of
its own (its own temp dir, token authentication with a token of the test's), stopped by
killing that session; and the one head most end-to-end tests share, so that a driver joins
a running cluster (``RAY_ADDRESS``) instead of starting and stopping Ray of its own."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import kill_session

RAY = str(Path(sys.executable).parent / "ray")


@dataclass(frozen=True)
class RayHead:
    """A running head: the address drivers join and the token file they authenticate with."""

    address: str
    token: Path
    session: int
    """The session of its ``ray start`` (its raylet and workers are in it)."""

    def environment(self) -> dict[str, str]:
        """What a driver's environment needs to join this head."""
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.token)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_token(folder: Path) -> Path:
    """A Ray token file in ``folder`` (created once)."""
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / "ray-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    return token


def wait_for_nodes(address: str, count: int, seconds: float = 90,
                   environment: dict[str, str] | None = None) -> list[str]:
    """Wait until the cluster at ``address`` has ``count`` live nodes with a CPU, as a fresh
    driver process joining it (with ``environment``: its Ray token) sees them; their Ray
    node ids."""
    probe = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
             "print(*(n['NodeID'] for n in ray.nodes()"
             " if n['Alive'] and n['Resources'].get('CPU', 0) >= 1))")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True,
                                 text=True, timeout=30, check=False, env=environment)
        except subprocess.TimeoutExpired:
            continue
        lines = out.stdout.strip().splitlines()
        nodes = lines[-1].split() if out.returncode == 0 and lines else []
        if len(nodes) >= count:
            return nodes
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not reach {count} node(s)")


@contextlib.contextmanager
def ray_head(token: Path, *, cpus: int = 2, options: Sequence[str] = (),
             environment: dict[str, str] | None = None) -> Iterator[RayHead]:
    """A Ray head of ``cpus`` CPUs on a free loopback port until the block ends."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths
    env = dict(environment or os.environ, RAY_ADDRESS="", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN_PATH=str(token))
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", f"--temp-dir={temp}",
         f"--ray-client-server-port={free_port()}", f"--num-cpus={cpus}", "--num-gpus=0",
         "--disable-usage-stats", *(options or ["--include-dashboard=false"])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        wait_for_nodes(address, 1, environment=env)
        yield RayHead(address, token, head.pid)
    finally:
        kill_session(head.pid)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
