"""A study's driver: the process that runs it (``optistudy study run`` on the spec the
service stored), either a local process in a session of its own or a Ray Job on a cluster.
Both outlive the service, so a restarted service finds them again by their id."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal, Protocol

import yaml

from studies.study import ledger
from studies.study.home import Home, process_alive, read_json

Phase = Literal["queued", "running", "succeeded", "failed"]
SPEC_FILE = "spec.yaml"
LOG_FILE = "driver.log"
LOG_TAIL = 2000
PROC = Path("/proc")
FORWARDED = ("OPTISTUDY_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI", "OPTISTUDY_CHECKPOINT_SECONDS")
"""The variables a Ray Job driver is given (with the service's data dir as
``OPTISTUDY_HOME``): the shared stores the service reads too, and how often trials save."""
IN_FLIGHT = ("PENDING", "RUNNING")
"""The Ray job statuses of a driver not yet ended (``ray.job_submission.JobStatus``)."""
NOT_FOUND = "Request failed with status code 404"
"""How Ray's job client says that the cluster does not know a job."""


class Driver(Protocol):
    kind: str

    def launch(self, name: str) -> str:
        """Start the driver of registered study ``name``; returns its id."""

    def find(self, name: str) -> str | None:
        """The id of a driver of study ``name`` in flight already (one started by a service
        that died before it recorded the id), or None."""

    def phase(self, driver_id: str, name: str) -> Phase:
        """Where the driver is now."""

    def error(self, driver_id: str, name: str) -> str:
        """Why a failed driver failed, as far as is known."""

    def stop(self, driver_id: str, grace_seconds: float) -> None:
        """Stop the driver and everything it started; returns once they are gone."""


SERVICE_SECRETS = ("OPTISTUDY_ADMIN_TOKEN",)
"""The service's own credentials: never passed to the processes it starts."""


def child_environment(home: Path) -> dict[str, str]:
    """The environment of a process the service starts (a driver, a scheduled benchmark):
    the service's, with ``OPTISTUDY_HOME`` its data dir and without its credentials."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in SERVICE_SECRETS}
    environment["OPTISTUDY_HOME"] = str(home)
    return environment


def write_spec(home: Home, name: str) -> Path:
    """The registered spec (``spec.json``) as the YAML file its driver runs. Not the JSON
    file itself: YAML 1.1 reads JSON's ``1e-06`` as a string."""
    path = home.study_dir(name) / SPEC_FILE
    path.write_text(yaml.safe_dump(read_json(home.study_dir(name) / "spec.json"),
                                   sort_keys=False))
    return path


class LocalDrivers:
    """Drivers as local processes: ``python -m service.cli study run SPEC``, each the leader
    of its own session (Ray's local processes join it), its output in the study's folder."""

    kind = "local"

    def __init__(self, home: Home):
        self.home = home
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def _spec_file(self, name: str) -> Path:
        return self.home.study_dir(name) / SPEC_FILE

    def launch(self, name: str) -> str:
        environment = child_environment(self.home.root)
        spec = write_spec(self.home, name)
        with open(self.home.study_dir(name) / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "study", "run", str(spec)],
                env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.children[process.pid] = process
        return str(process.pid)

    def find(self, name: str) -> str | None:
        """The session leader running this study's spec file (where /proc tells; elsewhere
        the live driver pid its ``status.json`` names)."""
        if not PROC.is_dir():
            path = self.home.study_dir(name) / "status.json"
            pid = int(read_json(path).get("driver_pid", -1)) if path.exists() else -1
            return str(pid) if process_alive(pid) else None
        spec = str(self._spec_file(name)).encode()
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (spec in (entry / "cmdline").read_bytes().split(b"\0")
                        and os.getpgid(int(entry.name)) == int(entry.name)):
                    return entry.name
        return None

    def phase(self, driver_id: str, name: str) -> Phase:
        if self._alive(int(driver_id), name):
            return "running"
        return "succeeded" if ledger.state(self.home, name) == "complete" else "failed"

    def _alive(self, pid: int, name: str) -> bool:
        """Whether ``pid`` is this study's driver and still running. A child of this service
        is asked directly (and reaped); any other process must still run this study's spec
        (where /proc tells), so a recycled pid is not taken for the driver."""
        child = self.children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self.children[pid]
            return False
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        if not PROC.is_dir():
            return True
        command = PROC / str(pid) / "cmdline"
        with contextlib.suppress(OSError):
            return str(self._spec_file(name)).encode() in command.read_bytes()
        return False

    def error(self, driver_id: str, name: str) -> str:
        log = self.home.study_dir(name) / LOG_FILE
        tail = log.read_bytes()[-LOG_TAIL:].decode(errors="replace") if log.exists() else ""
        return f"the driver (pid {driver_id}) ended before the study was complete; " \
               f"the end of its output:\n{tail}"

    def stop(self, driver_id: str, grace_seconds: float) -> None:
        """SIGTERM to the driver's session, SIGKILL to what is left after the grace period.
        The session's process group outlives the driver while any member lives, so its id
        cannot have been reused by another group."""
        group = int(driver_id)
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._group_alive(group):
                time.sleep(0.1)

    def _group_alive(self, group: int) -> bool:
        child = self.children.get(group)
        if child is not None and child.poll() is not None:
            del self.children[group]
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True


class RayJobs:
    """Drivers as Ray Jobs on the cluster whose job server is at ``address``: the spec is
    sent in the job's working dir; the job's environment names the service's data dir and
    the shared stores (so the driver records where the service reads) and the cancel grace
    period (Ray's SIGTERM-to-SIGKILL wait on ``stop_job``)."""

    kind = "ray-job"

    def __init__(self, address: str, home: Home, *, grace_seconds: float = 10.0):
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(address)
        self.home = home
        self.grace_seconds = grace_seconds

    def launch(self, name: str) -> str:
        from ray.exceptions import RayError

        environment = {key: os.environ[key] for key in FORWARDED if key in os.environ}
        environment["OPTISTUDY_HOME"] = str(self.home.root)
        environment["RAY_JOB_STOP_WAIT_TIME_S"] = str(math.ceil(self.grace_seconds))
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / SPEC_FILE).write_bytes(write_spec(self.home, name).read_bytes())
            try:
                return self.client.submit_job(
                    entrypoint=f"optistudy study run {SPEC_FILE}",
                    runtime_env={"working_dir": folder, "env_vars": environment},
                    metadata={"optistudy.study": name})
            except RayError as error:  # e.g. a missing or wrong Ray token
                raise RuntimeError(str(error)) from error

    def find(self, name: str) -> str | None:
        """A job of this study still pending or running (by its ``optistudy.study``
        metadata)."""
        for job in self.client.list_jobs():
            if (job.metadata or {}).get("optistudy.study") == name \
                    and job.status in IN_FLIGHT and job.submission_id:
                return str(job.submission_id)
        return None

    def _status(self, driver_id: str) -> str | None:
        """The job's status; None where the cluster does not know the job (a head restarted
        without its GCS state): its driver is gone."""
        try:
            return self.client.get_job_status(driver_id)
        except RuntimeError as error:
            if str(error).startswith(NOT_FOUND):
                return None
            raise

    def phase(self, driver_id: str, name: str) -> Phase:
        status = self._status(driver_id)
        if status == "PENDING":
            return "queued"
        if status == "RUNNING":
            return "running"
        return "succeeded" if status == "SUCCEEDED" else "failed"

    def error(self, driver_id: str, name: str) -> str:
        if self._status(driver_id) is None:
            return f"Ray job {driver_id} is unknown to the cluster (its head restarted?)"
        info = self.client.get_job_info(driver_id)
        logs = self.client.get_job_logs(driver_id)[-LOG_TAIL:]
        return f"Ray job {driver_id} ended {info.status}: {info.message or ''}\n{logs}"

    def stop(self, driver_id: str, grace_seconds: float) -> None:
        """``stop_job`` (SIGTERM to the driver, SIGKILL after the job's
        ``RAY_JOB_STOP_WAIT_TIME_S``), then wait until the job has ended."""
        if self._status(driver_id) not in IN_FLIGHT:
            return
        self.client.stop_job(driver_id)
        deadline = time.monotonic() + grace_seconds + 30.0
        while time.monotonic() < deadline and self._status(driver_id) in IN_FLIGHT:
            time.sleep(0.5)
