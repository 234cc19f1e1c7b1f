"""Following a job from the registry: a progress bar on a terminal, plain lines elsewhere.

The follower only reads (the registry row, and an adaptive run's convergence.json), so any
process can follow any job: `edt run` its own, `edt wait ID` one started elsewhere. Without a
terminal (Slurm or CI log files) it prints one plain line every few seconds, and a line each
time the job starts or stops waiting for something.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from api.display import convergence_text
from cluster.liveness import STALE_SECONDS, head_reachable, shown_status
from jobs.faults import RegistryUnavailable, fault_timeout, registry_fault, retry
from jobs.registry import JobRecord, Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore

POLL_SECONDS = 0.5
PLAIN_EVERY_SECONDS = 5.0
err = Console(stderr=True)


class _Rate:
    """Scenarios per second since following began, and the time left at that rate."""

    def __init__(self, done: int) -> None:
        self.t0, self.done0 = time.monotonic(), done

    def rate(self, done: int) -> float:
        elapsed = time.monotonic() - self.t0
        return (done - self.done0) / elapsed if elapsed > 0 else 0.0

    def eta(self, done: int, total: int) -> float | None:
        r = self.rate(done)
        return max(total - done, 0) / r if r > 0 else None


def _read(registry: Registry, job_id: str) -> JobRecord:
    return retry(
        lambda: registry.get(job_id),
        what=f"registry {registry}",
        budget=fault_timeout(),
        wrap=RegistryUnavailable,
        transient=registry_fault,
    )


def _convergence(store: ResultStore | None, record: JobRecord) -> tuple[dict[str, Any], ...]:
    if store is None or not record.spec.get("scenarios", {}).get("until"):
        return ()
    try:
        report = store.read_json(record.id, "convergence.json")
    except Exception:  # not written yet, or storage busy: shown at the next poll
        return ()
    history = report.get("history") or []
    last = max((row["n"] for row in history), default=None)
    return tuple(row for row in history if row["n"] == last)


def _plain_line(record: JobRecord, rate: _Rate) -> str:
    done, total = record.scenarios_done, record.total_scenarios
    share = f" ({done / total:.1%})" if total else ""
    eta = rate.eta(done, total)
    eta_text = str(timedelta(seconds=round(eta))) if eta is not None else "n/a"
    return (
        f"{record.id}: {done:,}/{total:,}{share}, {rate.rate(done):,.0f}/s, ETA {eta_text}, "
        f"{record.scenarios_failed:,} failed"
    )


def _ended(
    record: JobRecord, gone_since: float | None, baseline: int, t0: float, cluster: str | None
) -> bool:
    if record.status.is_terminal():
        return True
    if record.status is JobStatus.QUEUED:
        # Started by this follower (baseline >= 0): a supervisor takes it within seconds.
        return baseline >= 0 and time.monotonic() - t0 > STALE_SECONDS
    if record.status is JobStatus.INTERRUPTED:
        # Being resumed: the old interruption stands until the new supervisor takes over.
        fresh = (record.interruptions or 0) > baseline
        return fresh or time.monotonic() - t0 > STALE_SECONDS
    # A supervisor restarted by Ray takes its job back within seconds; one gone for longer
    # than a stale heartbeat is not coming back, nor one whose cluster's head is gone.
    if gone_since is None:
        return False
    if cluster is not None and not head_reachable(cluster):
        return True
    return time.monotonic() - gone_since > STALE_SECONDS


def follow(
    registry: Registry,
    job_id: str,
    store: ResultStore | None,
    interactive: bool | None = None,
    resuming: bool = False,
    starting: bool = False,
    cluster: str | None = None,
) -> JobRecord:
    """Show the job's progress until it ends (or is interrupted); return its last record.

    `starting`: this process has just started the job's supervisor; `resuming`: the job was
    interrupted and a new supervisor is starting for it; `cluster`: the address of the Ray head
    the supervisor runs on (a lost head ends the wait for a supervisor to come back). Registry
    reads are retried through an outage as a supervisor's are."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    record = _read(registry, job_id)
    rate = _Rate(record.scenarios_done)
    baseline = (record.interruptions or 0) if resuming else -1
    if starting and not resuming:
        baseline = record.interruptions or 0
    ended = functools.partial(_ended, baseline=baseline, t0=time.monotonic(), cluster=cluster)
    if interactive:
        return _follow_bar(registry, record, store, rate, ended)
    last_line, message, gone_since = 0.0, record.message, None
    while True:
        shown, _ = shown_status(record)
        gone_since = (gone_since or time.monotonic()) if shown is not record.status else None
        if ended(record, gone_since):
            return record
        if record.message != message and record.message:
            err.print(f"{record.id}: {record.message}", highlight=False, soft_wrap=True)
        message = record.message
        if time.monotonic() - last_line >= PLAIN_EVERY_SECONDS:
            last_line = time.monotonic()
            text = _plain_line(record, rate)
            conv = convergence_text(_convergence(store, record))
            err.print(text + (f", {conv}" if conv else ""), highlight=False, soft_wrap=True)
        time.sleep(POLL_SECONDS)  # polling interval of the registry
        record = _read(registry, job_id)


def _follow_bar(
    registry: Registry,
    record: JobRecord,
    store: ResultStore | None,
    rate: _Rate,
    ended: Callable[[JobRecord, float | None], bool],
) -> JobRecord:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(record.id, total=record.total_scenarios, rate="", note="")
        gone_since: float | None = None
        polls, conv = 0, ""
        while True:
            shown, _ = shown_status(record)
            gone_since = (gone_since or time.monotonic()) if shown is not record.status else None
            if polls % 4 == 0:  # convergence.json is a storage read: not at every poll
                conv = convergence_text(_convergence(store, record))
            bar.update(
                task,
                total=record.total_scenarios,
                completed=record.scenarios_done,
                rate=f"{rate.rate(record.scenarios_done):,.0f}/s, {record.scenarios_failed} failed",
                note=record.message or conv,
            )
            if ended(record, gone_since):
                return record
            time.sleep(POLL_SECONDS)  # polling interval of the registry
            polls += 1
            record = _read(registry, record.id)
