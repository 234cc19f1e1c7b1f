"""Runs one job to the end: chunks dispatched to the actor pool, commits recorded, summary last.

The supervisor is the only writer of a job's registry row while it runs. It keeps a bounded
number of chunks in flight (backpressure: results are written by the actors, but a job of a
million scenarios must not queue a million tasks), records each committed chunk, updates
progress, and polls the cancel flag. `resume` is the same loop over the chunks that have no
committed part, so a crashed driver loses at most the chunks that were in flight.

An adaptive job (Monte Carlo with `until`) stops dispatching once its rule is met on the
committed prefix of scenario ids (`jobs.adaptive`); chunks then in flight finish and are
trimmed out of the dataset, so it holds exactly the prefix that met the rule.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ray

from cluster.pool import start_pool, stop_pool
from cluster.runtime import connect
from edt_compute import __version__
from jobs.adaptive import PrefixMonitor, trim_to_prefix
from jobs.registry import JobBusy, JobRecord, Registry
from jobs.spec import PreparedJob, prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from jobs.summary import build_summary

_PER_ACTOR = 2
CHUNK_ATTEMPTS = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0


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
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, owned by someone else
        return f"{record.runner} (process alive on this host)"
    if age > STALE_SECONDS:
        return None
    return f"{record.runner} (heartbeat {age:.0f} s ago)"


class _Heartbeat:
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

    def check(self, record: JobRecord | None = None) -> None:
        current = record if record is not None else self.registry.get(self.job_id)
        if self.lost or current.runner != self.runner:
            self.lost = True
            raise JobBusy(f"job {self.job_id} was taken over by another supervisor")

    def stop(self) -> None:
        self._stop.set()


def _plain(exc: BaseException) -> str:
    """An error for the registry: type and message, without the terminal colours Ray adds."""
    return _ANSI.sub("", f"{type(exc).__name__}: {exc}")[:4000]


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    total: int  # an adaptive run's cap, then its stopping n once reached
    rate: float  # scenarios per second in this run
    eta_seconds: float | None
    # Adaptive runs: one row per target at the last checkpoint (n, metric, statistic,
    # estimate, lower, upper, half_width, goal, met), as in summary.json's history.
    convergence: tuple[dict[str, Any], ...] = ()


def default_chunk_size(job: PreparedJob, workers: int) -> int:
    """Chunks big enough that dispatch stays under ~5% of compute, yet several per worker.

    A simulate-mode scenario costs ~0.1-0.5 ms and a chunk's dispatch and Parquet write a few
    ms, so chunks of >= 1000 scenarios keep the overhead small; an optimize-mode scenario costs
    ~0.1-1 s, so a few scenarios per chunk are enough and keep workers balanced.
    """
    # An adaptive run may stop at its first checkpoint: size chunks for that, not the cap,
    # so that little is computed beyond the stopping point.
    rule = job.stopping_rule
    planned = job.total if rule is None else rule.min_samples
    per_worker = math.ceil(planned / max(1, workers * 4))
    if job.spec.mode == "optimize":
        return max(1, min(per_worker, 8))
    return max(1, min(max(per_worker, 1000), 20000))


class JobRunner:
    def __init__(
        self,
        registry: Registry,
        store: ResultStore,
        *,
        address: str | None = None,
        workers: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.address = address
        self.workers = workers
        self.on_progress = on_progress
        self.actors: list[Any] = []
        self.actor_pids: list[int] = []
        self.dispatched: list[int] = []
        self.timings: dict[int, dict[str, float]] = {}
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wall_seconds = 0.0
        self.pool_size = 0
        self.monitor: PrefixMonitor | None = None

    def submit(
        self, job: PreparedJob, chunk_size: int | None = None, tenant: str = "default"
    ) -> JobRecord:
        """Register a queued job and store its spec; nothing runs yet."""
        size = chunk_size or job.spec.chunk_size or default_chunk_size(job, self._pool_size())
        doc = job.document()
        doc["chunk_size"] = size
        record = self.registry.create_job(
            None,
            job.spec.name,
            doc,
            job.spec_hash,
            job.total,
            math.ceil(job.total / size),
            tenant=tenant,
            priority=job.spec.priority,
            labels=job.spec.labels,
        )
        self.store.write_job_spec(record.id, doc)
        return record

    def _pool_size(self) -> int:
        """Actors to start: as asked, but never more than the cluster's CPUs (each actor
        reserves one; more would wait for a CPU forever)."""
        info = connect(self.address, self.workers)
        return max(1, min(self.workers or info.cpus, info.cpus))

    def run(self, job_id: str) -> JobRecord:
        """Run (or resume) a job until it succeeds, fails or is cancelled."""
        record = self.registry.get(job_id)
        if record.status.is_terminal():
            raise ValueError(
                f"job {job_id} is already {record.status.value}; a finished job is never rerun"
            )
        busy = runner_alive(record)
        if busy:
            raise JobBusy(f"job {job_id} is being run by {busy}; cancel it or wait for it")
        job = prepare_job(dict(record.spec))
        size = int(record.spec["chunk_size"])
        started = datetime.now(UTC)
        self.registry.take_over(job_id, self.runner_id, record.runner)
        self.registry.set_status(job_id, JobStatus.RUNNING)
        beat = _Heartbeat(self.registry, job_id, self.runner_id)
        try:
            connect(self.address, self.workers)
            try:
                outcome = self._dispatch(record, job, size, beat)
            finally:
                stop_pool(self.actors)
                self.actors = []
            if outcome == "cancelled":
                beat.check()
                return self.registry.set_status(job_id, JobStatus.CANCELLED)
            self._finish(record, job, started)
            beat.check()
        except JobBusy:
            raise  # the job belongs to another supervisor now: its status is not ours to set
        except Exception as exc:
            # Whatever fails (a chunk after its retries, the summary), the job says so.
            self.registry.set_status(job_id, JobStatus.FAILED, error=_plain(exc))
            raise
        finally:
            beat.stop()
        return self.registry.set_status(job_id, JobStatus.SUCCEEDED)

    def _start_monitor(self, record: JobRecord, job: PreparedJob, size: int) -> None:
        """Adaptive runs: follow the committed prefix; on resume, replay what is committed."""
        self.monitor = None
        if job.stopping_rule is None:
            return
        self.monitor = PrefixMonitor(
            job, size, lambda k, columns: self.store.read_part(record.id, k, columns=columns)
        )
        for k in self.registry.committed_chunks(record.id):
            self.monitor.commit(k)
        self._checkpoint(record.id)

    def _checkpoint(self, job_id: str) -> bool:
        """Evaluate the checkpoints now reachable; publish the history; True once stopped."""
        assert self.monitor is not None
        seen = len(self.monitor.history)
        stopped = self.monitor.advance()
        if len(self.monitor.history) > seen:
            # Readable while the job runs (e.g. by the API), before summary.json exists.
            self.store.write_json(job_id, "convergence.json", self.monitor.report())
        return stopped

    def _dispatch(self, record: JobRecord, job: PreparedJob, size: int, beat: _Heartbeat) -> str:
        committed = self.registry.committed_chunks(record.id)
        self._start_monitor(record, job, size)
        stopped = self.monitor is not None and self.monitor.stopped
        pending = [k for k in range(record.total_chunks) if k not in committed and not stopped]
        self.dispatched = []
        n_actors = max(1, min(self._pool_size(), len(pending) or 1))
        self.actors = start_pool(self.store.url, n_actors)
        self.actor_pids = ray.get([a.pid.remote() for a in self.actors])
        doc_ref = ray.put(dict(record.spec))
        done = sum(c.rows for c in self.registry.chunks(record.id))
        failed = record.scenarios_failed
        base_done, t0 = done, time.perf_counter()
        in_flight: dict[Any, int] = {}
        # Two chunks queued per actor: the next one starts while the driver records the last.
        idle = list(range(n_actors)) * _PER_ACTOR
        busy: dict[Any, int] = {}
        queue = list(pending)
        cancelled = False
        attempts: dict[int, int] = {}
        parked: dict[int, str] = {}
        last_poll = time.monotonic()
        while queue or in_flight:
            while queue and idle and not cancelled:
                k = queue.pop(0)
                a = idle.pop(0)
                start, stop = k * size, min((k + 1) * size, job.total)
                ref = self.actors[a].run.remote(
                    record.id, record.spec_hash, doc_ref, k, start, stop
                )
                in_flight[ref], busy[ref] = k, a
                self.dispatched.append(k)
            if cancelled and not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                k = in_flight.pop(ref)
                idle.append(busy.pop(ref))
                try:
                    info = ray.get(ref)
                except Exception as exc:
                    if self._beyond_stop(k):
                        continue  # its rows would be discarded anyway
                    # Ray re-runs a chunk whose worker died; an exception (storage down, say)
                    # gets a few more attempts here before it fails the job.
                    attempts[k] = attempts.get(k, 0) + 1
                    if cancelled:
                        continue  # not needed any more: the job stops with what is committed
                    if attempts[k] > CHUNK_ATTEMPTS:
                        error = f"chunk {k} failed {attempts[k]} times: {_plain(exc)}"
                        if self.monitor is None:
                            raise RuntimeError(error) from None
                        # An adaptive run may stop before this chunk: decide at the end.
                        parked[k] = error
                        continue
                    queue.insert(0, k)
                    continue
                self.timings[info["chunk"]] = {
                    "compute_seconds": info["compute_seconds"],
                    "task_seconds": info["seconds"],
                }
                if self.registry.record_chunk(
                    record.id, info["chunk"], info["rows"], info["node"], info["path"]
                ):
                    done += info["rows"]
                    failed += info["failed"]
                self.registry.update_progress(record.id, done, failed)
                if self.monitor is not None:
                    self.monitor.commit(k)
                    if not self.monitor.stopped and self._checkpoint(record.id):
                        queue.clear()  # stop dispatching; chunks in flight finish
                self._report(done, failed, job.total, base_done, t0)
            if time.monotonic() - last_poll > 0.5:
                last_poll = time.monotonic()
                now = self.registry.get(record.id)
                beat.check(now)
                if now.cancel_requested:
                    cancelled = True
                    queue.clear()
        self.wall_seconds = time.perf_counter() - t0
        self.pool_size = n_actors
        needed = [k for k in sorted(parked) if not self._beyond_stop(k)]
        if needed and not cancelled:
            raise RuntimeError(parked[needed[0]])
        return "cancelled" if cancelled else "done"

    def _beyond_stop(self, chunk: int) -> bool:
        last = self.monitor.last_chunk() if self.monitor is not None else None
        return last is not None and chunk > last

    def _report(self, done: int, failed: int, total: int, base: int, t0: float) -> None:
        if self.on_progress is None:
            return
        convergence: tuple[dict[str, Any], ...] = ()
        if self.monitor is not None:
            convergence = tuple(self.monitor.latest)
            if self.monitor.stop_n is not None:
                total = self.monitor.stop_n
                done = min(done, total)
        elapsed = time.perf_counter() - t0
        rate = (done - base) / elapsed if elapsed > 0 else 0.0
        eta = max(total - done, 0) / rate if rate > 0 else None
        self.on_progress(Progress(done, failed, total, rate, eta, convergence))

    def _finish(self, record: JobRecord, job: PreparedJob, started: datetime) -> None:
        size = int(record.spec["chunk_size"])
        chunks = self.registry.chunks(record.id)
        total, convergence = job.total, None
        if self.monitor is not None:
            if self.monitor.stop_n is None:
                raise RuntimeError(f"job {record.id}: every chunk is in, yet the rule never ran")
            total = self.monitor.stop_n
            extra = trim_to_prefix(self.store, record.id, total, size, chunks)
            convergence = self.monitor.report(extra)
            chunks = [c for c in chunks if c.chunk_index * size < total]
        table = self.store.read_scenarios(record.id)
        if table.num_rows != total:
            raise RuntimeError(
                f"job {record.id}: {table.num_rows} scenario rows for {total} scenarios"
            )
        summary = build_summary(table, job, convergence)
        self.store.write_json(record.id, "summary.json", summary)
        if self.monitor is not None:
            # The registry's done count is the final dataset's, not what was computed.
            failed = sum(summary["status_counts"][s] for s in ("infeasible", "time_limit", "error"))
            self.registry.update_progress(record.id, total, failed)
        manifest = {
            "job_id": record.id,
            "name": job.spec.name,
            "spec_hash": record.spec_hash,
            "software": {"edt_compute": __version__, "ray": ray.__version__},
            "total_scenarios": total,
            "chunk_size": size,
            "chunks": [
                {
                    "index": c.chunk_index,
                    "rows": min(c.rows, total - c.chunk_index * size),
                    "node": c.node,
                    "path": c.path,
                    "committed_at": c.committed_at.isoformat(),
                    **self.timings.get(c.chunk_index, {}),
                }
                for c in chunks
            ],
            "recomputed_chunks_this_run": len(set(self.dispatched)),
            "workers": self.pool_size,
            "dispatch_wall_seconds": self.wall_seconds,
            "created_at": record.created_at.isoformat(),
            "started_at": (record.started_at or started).isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
        if convergence is not None:
            manifest["adaptive"] = {
                "max_samples": job.total,
                "stopped_at": total,
                "stopped_by": convergence["stopped_by"],
                "extra_scenarios_discarded": convergence["extra_scenarios_discarded"],
            }
        self.store.write_json(record.id, "manifest.json", manifest)
