"""Runs one job to the end: chunks dispatched to the actor pool, commits recorded, summary last.

The supervisor is the only writer of a job's registry row while it runs. It keeps a bounded
number of chunks in flight (backpressure: results are written by the actors, but a job of a
million scenarios must not queue a million tasks), records each committed chunk, updates
progress, and polls the cancel flag. `run` on a job that already has committed chunks
computes only the others, so a lost supervisor costs at most the chunks that were in flight.
On a cluster it runs inside the job's named supervisor actor (`cluster.launch`).

Infrastructure faults (storage or registry unreachable) are waited out with backoff for
`fault_timeout` seconds, the registry saying what the job waits for; past that the job is
`interrupted` (resumable) with a one-line reason. A failed chunk is handled by
`cluster.chunk_queue` (retry, bisect the scenario that crashes its worker, or fail).

An adaptive job (Monte Carlo with `until`) stops dispatching once its rule is met on the
committed prefix of scenario ids (`jobs.adaptive`); chunks then in flight finish and are
trimmed out of the dataset, so it holds exactly the prefix that met the rule.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import ray

from cluster.chunk_queue import ChunkQueue, Work
from cluster.liveness import Heartbeat, runner_alive
from cluster.pool import start_pool, stop_pool
from cluster.runtime import connect
from cluster.slots import ActorSlots
from jobs.adaptive import PrefixMonitor, trim_to_prefix
from jobs.decide import decision_line
from jobs.faults import (
    InfrastructureError,
    Outage,
    RegistryUnavailable,
    StorageUnavailable,
    fault_timeout,
    one_line,
    registry_fault,
    retry,
)
from jobs.manifest import RunStats, build_manifest
from jobs.registry import JobBusy, JobRecord, Registry
from jobs.spec import PreparedJob, default_chunk_size, prepare_job
from jobs.status import FAILED, JobStatus
from jobs.storage import ResultStore
from jobs.summary import build_summary

__all__ = ["JobRunner", "Progress", "default_chunk_size", "runner_alive"]

_PER_ACTOR = 2
_CRASHES = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.NodeDiedError,
)
log = logging.getLogger("edt.supervisor")
T = TypeVar("T")


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


class _Stop(Exception):  # noqa: N818 (control flow: the dispatch loop ended early)
    def __init__(self, status: JobStatus, reason: str | None = None) -> None:
        super().__init__(reason or status.value)
        self.status, self.reason = status, reason


@dataclass
class _Dispatch:
    """The state of one run's dispatch loop (`JobRunner._dispatch`)."""

    record: JobRecord
    total: int
    queue: ChunkQueue
    bounds: dict[int, tuple[int, int]]
    slots: ActorSlots
    outage: Outage
    doc_ref: Any
    milp_ref: Any
    done: int  # scenarios committed, this run and before
    failed: int
    base_done: int  # committed before this run (the rate counts only this run's)
    t0: float = field(default_factory=time.perf_counter)
    last_poll: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    parked: dict[int, str] = field(default_factory=dict)  # adaptive: chunk -> its error


def _storage_error(exc: Exception) -> bool:
    return not isinstance(exc, FileNotFoundError | ValueError | KeyError | TypeError)


class JobRunner:
    def __init__(
        self,
        registry: Registry,
        store: ResultStore,
        *,
        address: str | None = None,
        workers: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        incarnation: str | None = None,
        fault_seconds: float | None = None,
    ) -> None:
        """`incarnation`: an id that a restarted supervisor keeps (its Ray actor id), so that
        it takes its own job back from its dead predecessor at once."""
        self.registry = registry
        self.store = store
        self.address = address
        self.workers = workers
        self.on_progress = on_progress
        self.incarnation = incarnation or uuid.uuid4().hex[:8]
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{self.incarnation}"
        self.fault_seconds = fault_timeout() if fault_seconds is None else fault_seconds
        self.actors: list[Any] = []
        self._pid_refs: list[Any] = []
        self.stats = RunStats()
        self.monitor: PrefixMonitor | None = None
        self._queue: ChunkQueue | None = None
        self._decision: dict[str, int] | None = None

    # ---- retried access to the registry and storage ---------------------------------

    def _wait_note(self, job_id: str) -> Callable[[str], None]:
        def note(message: str) -> None:
            log.warning("job %s: %s", job_id, message)

        return note

    def _reg(self, job_id: str, call: Callable[[], T]) -> T:
        return retry(
            call,
            what=f"registry {self.registry}",
            budget=self.fault_seconds,
            wrap=RegistryUnavailable,
            transient=registry_fault,
            on_wait=self._wait_note(job_id),
        )

    def _io(self, job_id: str, call: Callable[[], T]) -> T:
        def note(message: str) -> None:
            self._wait_note(job_id)(message)
            with contextlib.suppress(Exception):  # what it waits for is also in the log
                self.registry.set_message(job_id, message)

        return retry(
            call,
            what=f"storage {self.store.url}",
            budget=self.fault_seconds,
            wrap=StorageUnavailable,
            transient=_storage_error,
            on_wait=note,
        )

    # ---- submit and run -------------------------------------------------------------

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
            storage=self.store.url,
        )
        self.store.write_job_spec(record.id, doc)
        return record

    def _pool_size(self) -> int:
        """Actors to start: as asked, but never more than the cluster's CPUs (each actor
        reserves one; more would wait for a CPU forever)."""
        info = connect(self.address, self.workers)
        return max(1, min(self.workers or info.cpus, info.cpus))

    @property
    def actor_pids(self) -> list[int]:
        """Process ids of this run's pool actors that have started (for fault tests)."""
        if not self._pid_refs:
            return []
        ready, _ = ray.wait(self._pid_refs, num_returns=len(self._pid_refs), timeout=0)
        up = set(ready)
        return [int(ray.get(r)) for r in self._pid_refs if r in up]

    def _mine(self, record: JobRecord) -> bool:
        """The recorded runner is an earlier incarnation of this supervisor (Ray restarted
        it, so that one is dead)."""
        return record.runner is not None and record.runner.split(":")[-1] == self.incarnation

    def run(self, job_id: str) -> JobRecord:
        """Run (or resume) a job until it succeeds, fails, is cancelled or interrupted."""
        record = self._reg(job_id, lambda: self.registry.get(job_id))
        if record.status.is_terminal():
            raise ValueError(
                f"job {job_id} is already {record.status.value}; a finished job is never rerun"
            )
        busy = runner_alive(record)
        if busy and not self._mine(record):
            raise JobBusy(f"job {job_id} is being run by {busy}; cancel it or wait for it")
        job = prepare_job(dict(record.spec))
        size = int(record.spec["chunk_size"])
        started = datetime.now(UTC)
        self._reg(job_id, lambda: self.registry.take_over(job_id, self.runner_id, record.runner))
        self._reg(job_id, lambda: self.registry.set_status(job_id, JobStatus.RUNNING))
        log.info("job %s: running (%s), supervisor %s", job_id, job.spec.name, self.runner_id)
        beat = Heartbeat(self.registry, job_id, self.runner_id)
        try:
            connect(self.address, self.workers)
            try:
                self._dispatch(record, job, size, beat)
                self._finish(record, job, started)
            finally:
                stop_pool(self.actors)
                self.actors = []
            self._reg(job_id, lambda: beat.check(self.registry.get(job_id)))
        except JobBusy:
            raise  # the job belongs to another supervisor now: its status is not ours to set
        except _Stop as stop:
            return self._end(job_id, stop.status, stop.reason)
        except InfrastructureError as exc:
            return self._end(job_id, JobStatus.INTERRUPTED, one_line(exc))
        except Exception as exc:
            # Whatever fails (a chunk after its retries, the summary), the job says so.
            self._end(job_id, JobStatus.FAILED, one_line(exc, 1000))
            raise
        finally:
            beat.stop()
        return self._end(job_id, JobStatus.SUCCEEDED)

    def _end(self, job_id: str, status: JobStatus, reason: str | None = None) -> JobRecord:
        log.log(
            logging.INFO if status is JobStatus.SUCCEEDED else logging.WARNING,
            "job %s: %s%s",
            job_id,
            status.value,
            f": {reason}" if reason else "",
        )
        return self._reg(
            job_id,
            lambda: self.registry.set_status(job_id, status, error=reason, runner=self.runner_id),
        )

    def _start_monitor(self, record: JobRecord, job: PreparedJob, size: int) -> None:
        """Adaptive runs: follow the committed prefix; on resume, replay what is committed."""
        self.monitor = None
        if job.stopping_rule is None:
            return
        self.monitor = PrefixMonitor(
            job,
            size,
            lambda k, columns: self._io(
                record.id, lambda: self.store.read_part(record.id, k, columns=columns)
            ),
        )
        for k in self._reg(record.id, lambda: self.registry.committed_chunks(record.id)):
            self.monitor.commit(k)
        self._checkpoint(record.id)

    def _checkpoint(self, job_id: str) -> bool:
        """Evaluate the checkpoints now reachable; publish the history; True once stopped."""
        assert self.monitor is not None
        seen = len(self.monitor.history)
        stopped = self.monitor.advance()
        if len(self.monitor.history) > seen:
            # Readable while the job runs (e.g. by the API), before summary.json exists.
            report = self.monitor.report()
            self._io(job_id, lambda: self.store.write_json(job_id, "convergence.json", report))
        return stopped

    def _milp_ref(self, job: PreparedJob) -> Any:
        """Optimize mode: the MILP compiled once here, shared with every actor."""
        if job.spec.mode not in ("optimize", "decide"):
            return None
        from solvers import compile_milp

        return ray.put(compile_milp(job.model))

    def _dispatch(self, record: JobRecord, job: PreparedJob, size: int, beat: Heartbeat) -> None:
        """Every chunk without a committed part through the pool, until none is left (or
        the job is cancelled, its rule met, or a fault outlasts its budget: `_Stop`)."""
        d = self._begin(record, job, size, beat)
        while d.queue or d.slots:
            self._fill(d)
            if d.cancelled and not d.slots:
                break
            for ref, work, a in d.slots.wait(timeout=0.5):
                self._collect(d, ref, work, a)
            self._check_faults(d)
            self._poll(d, beat)
        self.stats.wall_seconds = time.perf_counter() - d.t0
        self.stats.workers = len(self.actors)
        needed = [k for k in sorted(d.parked) if not self._beyond_stop(k)]
        if d.cancelled:
            raise _Stop(JobStatus.CANCELLED)
        if needed:
            raise RuntimeError(d.parked[needed[0]])

    def _begin(self, record: JobRecord, job: PreparedJob, size: int, beat: Heartbeat) -> _Dispatch:
        """The chunks left to compute, a pool sized for them, and the counts so far."""
        committed = self._reg(record.id, lambda: self.registry.committed_chunks(record.id))
        self._start_monitor(record, job, size)
        stopped = self.monitor is not None and self.monitor.stopped
        pending = [k for k in range(record.total_chunks) if k not in committed and not stopped]
        bounds = {k: (k * size, min((k + 1) * size, job.total)) for k in pending}
        queue = self._queue = ChunkQueue(pending, bounds)
        self.stats.dispatched = []
        n_actors = max(1, min(self._pool_size(), len(pending) or 1))
        if job.spec.mode == "decide":
            n_actors = self._pool_size()  # the decision's tasks are many more than its chunks
        self.actors = start_pool(self.store.url, n_actors)
        # Never wait here for every actor to start: two jobs' pools sharing too few CPUs would
        # each hold some and wait for the rest forever. Dispatch uses the actors that are up.
        self._pid_refs = [a.pid.remote() for a in self.actors]
        doc_ref, milp_ref = ray.put(dict(record.spec)), self._milp_ref(job)
        self._decision = None
        if job.spec.mode == "decide":
            self._decision = self._decide(record, job, doc_ref, milp_ref, beat)
        done = sum(c.rows for c in self._reg(record.id, lambda: self.registry.chunks(record.id)))
        return _Dispatch(
            record=record,
            total=job.total,
            queue=queue,
            bounds=bounds,
            # Two tasks queued per actor: the next one starts while the driver records the last.
            slots=ActorSlots(self.actors, _PER_ACTOR),
            outage=Outage(self.fault_seconds),
            doc_ref=doc_ref,
            milp_ref=milp_ref,
            done=done,
            failed=record.scenarios_failed,
            base_done=done,
        )

    def _fill(self, d: _Dispatch) -> None:
        """Give free actor slots the work that is due (nothing once cancelled or while the
        storage outage is past its budget)."""
        while not d.cancelled and not d.outage.expired:
            taken = d.queue.take(d.slots.free(), d.slots.busy())
            if taken is None:
                return
            work, a = taken
            d.slots.sent(self._send(d.record, work, a, d.doc_ref, d.milp_ref, d.bounds), work, a)

    def _collect(self, d: _Dispatch, ref: Any, work: Work, a: int) -> None:
        """One finished task: a commit (and a checkpoint of an adaptive run), or a failure
        for the chunk queue to judge."""
        jid = d.record.id
        try:
            info = ray.get(ref)
        except Exception as exc:
            if isinstance(exc, _CRASHES):
                d.slots.died(a)
            if d.cancelled or self._beyond_stop(work.chunk):
                return  # not needed any more
            error = self._failed(jid, work, a, exc, d.queue, d.outage)
            if error is not None:
                if self.monitor is None:
                    raise RuntimeError(error) from None
                d.parked[work.chunk] = error  # an adaptive run may stop before it
            return
        if work.probe is not None:
            d.queue.probe_done(work)
            return
        if d.outage.recovered():
            log.info("job %s: storage answers again", jid)
            self._reg(jid, lambda: self.registry.set_message(jid, None))
        d.done, d.failed = self._commit(d.record, info, d.done, d.failed)
        if self.monitor is not None:
            self.monitor.commit(work.chunk)
            if not self.monitor.stopped and self._checkpoint(jid):
                d.queue.clear()  # stop dispatching; chunks in flight finish
        self._report(d.done, d.failed, d.total, d.base_done, d.t0)

    def _check_faults(self, d: _Dispatch) -> None:
        """Interrupt the job when no actor could be placed, or the storage stayed down,
        for longer than the fault budget."""
        if d.slots.unavailable_for() > self.fault_seconds:
            raise _Stop(
                JobStatus.INTERRUPTED,
                f"no worker of the pool available for {d.slots.unavailable_for():.0f} s "
                "(restarting actors could not be placed)",
            )
        if d.outage.expired and not d.slots:
            raise _Stop(
                JobStatus.INTERRUPTED,
                f"storage {self.store.url} unreachable for {d.outage.elapsed:.0f} s: "
                f"{d.outage.last_error}",
            )

    def _poll(self, d: _Dispatch, beat: Heartbeat) -> None:
        """Every half second: still ours (JobBusy if not), ended elsewhere, cancel asked."""
        if time.monotonic() - d.last_poll <= 0.5:
            return
        d.last_poll = time.monotonic()
        jid = d.record.id
        now = self._reg(jid, lambda: self.registry.get(jid))
        beat.check(now)
        if now.status.is_terminal():  # ended by another process (e.g. edt cancel)
            raise JobBusy(f"job {jid} was ended elsewhere: {now.status.value}")
        if now.cancel_requested and not d.cancelled:
            d.cancelled = True
            d.queue.clear()

    def _send(
        self,
        record: JobRecord,
        work: Work,
        a: int,
        doc_ref: Any,
        milp_ref: Any,
        bounds: dict[int, tuple[int, int]],
    ) -> Any:
        actor = self.actors[a]
        if work.probe is not None:
            return actor.probe.remote(
                record.spec_hash, doc_ref, milp_ref, list(work.probe), self._decision
            )
        self.stats.dispatched.append(work.chunk)
        start, stop = bounds[work.chunk]
        crashed = self._queue_crashed(work)
        return actor.run.remote(
            record.id,
            record.spec_hash,
            doc_ref,
            milp_ref,
            work.chunk,
            start,
            stop,
            crashed,
            self._decision,
        )

    def _decide(
        self, record: JobRecord, job: PreparedJob, doc_ref: Any, milp_ref: Any, beat: Heartbeat
    ) -> dict[str, int]:
        """Decide mode: the schedule every scenario is then evaluated under. decision.json is
        written as soon as it is known, so that a resumed job does not search again."""
        from cluster.decide import ray_runner
        from jobs.decide import decide
        from jobs.decide_tasks import DecisionEvaluator

        jid = record.id
        if self._io(jid, lambda: self.store.exists(jid, "decision.json")):
            doc = self._io(jid, lambda: self.store.read_json(jid, "decision.json"))
        else:
            self._reg(jid, lambda: self.registry.set_message(jid, "choosing the build schedule"))

            def poll() -> None:
                now = self._reg(jid, lambda: self.registry.get(jid))
                beat.check(now)
                if now.status.is_terminal():
                    raise JobBusy(f"job {jid} was ended elsewhere: {now.status.value}")
                if now.cancel_requested:
                    raise _Stop(JobStatus.CANCELLED)

            run = ray_runner(self.actors, record.spec_hash, doc_ref, milp_ref, poll)
            t0 = time.perf_counter()
            doc = decide(job, run, DecisionEvaluator(job, ray.get(milp_ref)))
            log.info(
                "job %s: decision %s in %.1f s", jid, doc["schedule"], time.perf_counter() - t0
            )
            self._io(jid, lambda: self.store.write_json(jid, "decision.json", doc))
            self._reg(jid, lambda: self.registry.set_message(jid, None))
        return {str(p): int(b) for p, b in doc["schedule"].items()}

    def _queue_crashed(self, work: Work) -> list[int]:
        return self._queue.crashed_ids(work.chunk) if self._queue is not None else []

    def _failed(
        self,
        job_id: str,
        work: Work,
        a: int,
        exc: Exception,
        queue: ChunkQueue,
        outage: Outage,
    ) -> str | None:
        """Handle a task that raised; the error to fail the job with, if it must fail."""
        if isinstance(exc, StorageUnavailable):
            outage.failed(one_line(exc))
            message = (
                f"waiting for storage {self.store.url} ({outage.last_error}); "
                f"retrying for {outage.remaining():.0f} s more"
            )
            log.warning("job %s: chunk %d: %s", job_id, work.chunk, message)
            self._reg(job_id, lambda: self.registry.set_message(job_id, message))
            # Even past the budget: the chunk stays queued, so that a resume (or the storage
            # answering again through another chunk) still finds it.
            queue.storage_failed(work, a, outage.failures)
            return None
        if isinstance(exc, ray.exceptions.NodeDiedError):
            log.warning("job %s: chunk %d: its node died; running it again", job_id, work.chunk)
            queue.requeue(work)
            return None
        if isinstance(exc, _CRASHES):
            what = "probe of chunk" if work.probe is not None else "chunk"
            log.warning(
                "job %s: %s %d: worker process died: %s", job_id, what, work.chunk, one_line(exc)
            )
            if queue.worker_died(work):
                return None
            return f"chunk {work.chunk} keeps crashing its worker process: {one_line(exc)}"
        log.warning("job %s: chunk %d failed: %s", job_id, work.chunk, one_line(exc))
        if queue.errored(work):
            return None
        return f"chunk {work.chunk} failed {queue.errors[work.chunk]} times: {one_line(exc)}"

    def _commit(
        self, record: JobRecord, info: dict[str, Any], done: int, failed: int
    ) -> tuple[int, int]:
        k = info["chunk"]
        self.stats.timings[k] = {
            "compute_seconds": info["compute_seconds"],
            "task_seconds": info["seconds"],
        }
        recorded = self._reg(
            record.id,
            lambda: self.registry.record_chunk(
                record.id, k, info["rows"], info["node"], info["path"], info["compute_seconds"]
            ),
        )
        if recorded:
            done += info["rows"]
            failed += info["failed"]
        self._reg(record.id, lambda: self.registry.update_progress(record.id, done, failed))
        return done, failed

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
        jid = record.id
        size = int(record.spec["chunk_size"])
        chunks = self._reg(jid, lambda: self.registry.chunks(jid))
        total, convergence = job.total, None
        if self.monitor is not None:
            if self.monitor.stop_n is None:
                raise RuntimeError(f"job {jid}: every chunk is in, yet the rule never ran")
            total = self.monitor.stop_n
            extra = self._io(jid, lambda: trim_to_prefix(self.store, jid, total, size, chunks))
            convergence = self.monitor.report(extra)
            chunks = [c for c in chunks if c.chunk_index * size < total]
        table = self._io(jid, lambda: self.store.read_scenarios(jid))
        if table.num_rows != total:
            raise RuntimeError(f"job {jid}: {table.num_rows} scenario rows for {total} scenarios")
        summary = build_summary(table, job, convergence)
        if job.spec.mode == "decide":
            summary["decision"] = decision_line(
                self._io(jid, lambda: self.store.read_json(jid, "decision.json"))
            )
        self._io(jid, lambda: self.store.write_json(jid, "summary.json", summary))
        if self.monitor is not None:
            # The registry's counts are the final dataset's, not what was computed.
            failed = sum(summary["status_counts"][s.value] for s in FAILED)
            self._reg(jid, lambda: self.registry.finish_adaptive(jid, total, failed))
        manifest = build_manifest(
            record,
            job,
            chunks,
            total=total,
            started=started,
            run=self.stats,
            software={"ray": ray.__version__},
            convergence=convergence,
        )
        self._io(jid, lambda: self.store.write_json(jid, "manifest.json", manifest))
