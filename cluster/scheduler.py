"""Starts queued jobs' supervisors on Ray, and takes back jobs whose supervisor was lost.

Runs in the API server's process by default, or alone as `edt scheduler`. It computes
nothing and holds no state a restart would lose: the registry says what is queued, running
or interrupted, and Ray says which supervisors are alive, so a restarted scheduler carries on.

- scheduling: claim queued jobs by priority then age (`Registry.claim_next_queued`, atomic, so
  several schedulers never start a job twice) while fewer than `max_running` run;
- reconciling: a running job whose supervisor is gone, and an interrupted job within its
  retry budget, is resumed (its supervisor recomputes only chunks with no committed part).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobs.registry import InvalidTransition, JobBusy, JobNotFound, Registry
from jobs.status import JobStatus

log = logging.getLogger("edt.scheduler")


class Launcher(Protocol):
    """What the scheduler needs from `cluster.launch` (a protocol, so tests can fake it)."""

    def start_supervisor(
        self,
        job_id: str,
        registry_url: str,
        *,
        address: str | None = ...,
        workers: int | None = ...,
    ) -> None: ...

    def supervisor_alive(self, job_id: str) -> bool: ...

    def resume_job(
        self,
        registry: Registry,
        job_id: str,
        *,
        address: str | None = ...,
        workers: int | None = ...,
    ) -> Any: ...


def ray_launcher() -> Launcher:
    """The real launcher: named supervisor actors on Ray (`cluster.launch`)."""
    from cluster import launch

    return launch


@dataclass
class Scheduler:
    registry: Registry
    launcher: Launcher
    max_running: int = 4
    address: str | None = None
    workers: int | None = None
    resume_budget: int = 3
    interval: float = 1.0
    reconcile_every: float = 15.0
    started: list[str] = field(default_factory=list)  # job ids, in the order started
    resumed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last_reconcile: float = float("-inf")

    # ---- one pass --------------------------------------------------------------------

    def schedule(self) -> list[str]:
        """Start queued jobs while fewer than `max_running` run; returns the ids started."""
        started = []
        running = len(self.registry.list_jobs(status=JobStatus.RUNNING, limit=self.max_running + 1))
        while running < self.max_running:
            record = self.registry.claim_next_queued()
            if record is None:
                break
            running += 1
            try:
                self.launcher.start_supervisor(
                    record.id, self.registry.url, address=self.address, workers=self.workers
                )
            except Exception as exc:
                # Claimed but not started: the reconciler retries it as a lost supervisor.
                log.warning("job %s: could not start its supervisor: %s", record.id, exc)
                continue
            log.info("job %s: supervisor started (priority %s)", record.id, record.priority)
            started.append(record.id)
        self.started += started
        return started

    def reconcile(self) -> list[str]:
        """Resume running jobs whose supervisor is gone and interrupted jobs within budget."""
        resumed = []
        candidates = self.registry.list_jobs(status=JobStatus.RUNNING, limit=10_000)
        candidates += [
            r
            for r in self.registry.list_jobs(status=JobStatus.INTERRUPTED, limit=10_000)
            if (r.interruptions or 0) <= self.resume_budget
        ]
        for record in candidates:
            try:
                if record.status is JobStatus.RUNNING and self.launcher.supervisor_alive(record.id):
                    continue
                self.launcher.resume_job(
                    self.registry, record.id, address=self.address, workers=self.workers
                )
            except (JobBusy, InvalidTransition, JobNotFound, ValueError) as exc:
                # Alive elsewhere (e.g. `edt run`), finished meanwhile or gone: not ours.
                log.debug("job %s: not resumed: %s", record.id, exc)
                continue
            except Exception as exc:
                log.warning("job %s: resume failed: %s", record.id, exc)
                continue
            log.info("job %s: resumed (was %s)", record.id, record.status.value)
            resumed.append(record.id)
        self.resumed += resumed
        return resumed

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_reconcile >= self.reconcile_every:
            self._last_reconcile = now
            self.reconcile()
        self.schedule()

    # ---- the loop --------------------------------------------------------------------

    def run(self) -> None:
        """Tick until stopped; a failing pass is logged and retried, never fatal."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:
                log.warning("scheduler pass failed: %s", exc)
            # A submit wakes the loop at once; otherwise it looks again every `interval`.
            self._wake.wait(self.interval)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="edt-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
