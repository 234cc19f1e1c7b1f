"""Is a job's supervisor alive? Heartbeats in the registry, and what a reader should be told.

A supervisor records itself as the job's runner (`host:pid:token`) and beats every
HEARTBEAT_SECONDS from a thread, also while it is blocked. On its own host a reader asks the
process table (a killed supervisor is known dead at once); elsewhere a heartbeat older than
STALE_SECONDS means it is gone. A job marked running whose supervisor is gone is shown as
interrupted, with the command that resumes it.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

from jobs.registry import JobBusy, JobRecord, Registry
from jobs.status import JobStatus

HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0


def head_reachable(address: str, timeout: float = 3.0) -> bool:
    """Does a Ray cluster's head (its GCS, `host:port`; no host: this machine) accept
    connections? A TCP probe only: it answers in seconds where Ray's client waits a minute."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            return True
    except (OSError, ValueError):
        return False


def _process_alive(pid: int) -> bool:
    """The process exists and is not a zombie: a killed supervisor whose parent died with it
    stays a zombie where PID 1 does not reap (containers), yet it runs nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): existence is all there is to know
    return stat[stat.rindex(")") + 2] != "Z"


def runner_alive(record: JobRecord, now: datetime | None = None) -> str | None:
    """The job's runner if it looks alive. On this host the process table decides (a killed
    driver is known dead at once, a busy one alive); elsewhere a heartbeat younger than
    STALE_SECONDS."""
    if not record.runner or record.heartbeat_at is None:
        return None
    age = ((now or datetime.now(UTC)) - record.heartbeat_at).total_seconds()
    host, _, rest = record.runner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        if not _process_alive(int(pid)):
            return None
        return f"{record.runner} (process alive on this host)"
    if age > STALE_SECONDS:
        return None
    return f"{record.runner} (heartbeat {age:.0f} s ago)"


def shown_status(record: JobRecord, now: datetime | None = None) -> tuple[JobStatus, str | None]:
    """The status to show and why, if it differs from the registry's: a running job whose
    supervisor is gone is `interrupted`, never plainly running."""
    if record.status is not JobStatus.RUNNING:
        note = None
        if record.status is JobStatus.INTERRUPTED:
            note = f"{record.error or 'interrupted'}; resume with: edt resume {record.id}"
        return record.status, note
    if record.runner is None:
        started = record.started_at or record.created_at
        age = ((now or datetime.now(UTC)) - started).total_seconds()
        if age <= STALE_SECONDS:
            return record.status, record.message  # being started right now
    elif runner_alive(record, now) is not None:
        return record.status, record.message
    gone = f"its supervisor {record.runner} is gone" if record.runner else "no supervisor"
    return JobStatus.INTERRUPTED, f"{gone}; resume with: edt resume {record.id}"


class Heartbeat:
    """Says in the registry, from a thread, that this supervisor is alive, also while it is
    blocked (waiting for CPUs, reading parts, writing the summary); `check` raises JobBusy once
    another supervisor has taken the job over."""

    def __init__(self, registry: Registry, job_id: str, runner: str) -> None:
        self.registry, self.job_id, self.runner = registry, job_id, runner
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                if not self.registry.heartbeat(self.job_id, self.runner):
                    self.lost = True
                    return
            except Exception:  # a registry hiccup: try again at the next beat
                continue

    def check(self, record: JobRecord) -> None:
        if self.lost or record.runner != self.runner:
            self.lost = True
            raise JobBusy(f"job {self.job_id} was taken over by another supervisor")

    def stop(self) -> None:
        self._stop.set()
