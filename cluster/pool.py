"""Long-lived Ray actors that evaluate chunks and write their part files.

One actor per CPU by default. An actor keeps the evaluator of each job it has seen (the MILP
matrix, compiled once per job by the supervisor, arrives through the object store), so a
worker's warm-up costs milliseconds. Actors are restarted when their process dies
(`max_restarts=-1`), but their calls are at-most-once (`max_task_retries=0`): the supervisor
sees every crash and decides (retry, or bisect the chunk to isolate the scenario that kills
its worker). Writing a part is idempotent (same name, atomic replace), so a re-run chunk
never duplicates rows.

A part that cannot be written (storage down) raises `StorageUnavailable` after the store's
own short retries; the computed chunk is kept, so the supervisor's next attempt at the same
chunk on this actor only writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray

from jobs.decide_tasks import DecisionEvaluator, Task
from jobs.evaluate import ChunkEvaluator, ChunkResult
from jobs.faults import StorageUnavailable, one_line, storage_fault
from jobs.spec import prepare_job
from jobs.status import FAILED
from jobs.storage import ResultStore

# Test-only hooks, read in the worker process (forwarded by the supervisor): scenario ids
# whose evaluation kills the worker process, and a folder whose file `open` must exist before
# any chunk but the first runs (so that a test acts while a job is surely mid-way); a file
# `chunk-<k>` there lets chunk k alone through.
CRASH_IDS_ENV = "EDT_TEST_CRASH_IDS"
GATE_ENV = "EDT_TEST_GATE_DIR"
CRASH_MESSAGE = "the scenario crashed its worker process"


class ChunkWorker:
    def __init__(self, store_url: str) -> None:
        self.store = ResultStore(store_url)
        self.evaluators: dict[str, ChunkEvaluator] = {}
        self.deciders: dict[str, DecisionEvaluator] = {}
        self.unwritten: dict[tuple[str, int], ChunkResult] = {}
        crash = os.environ.get(CRASH_IDS_ENV, "")
        self._crash_ids = {int(x) for x in crash.split(",") if x.strip()}

    def pid(self) -> int:
        return os.getpid()

    def _evaluator(
        self,
        spec_hash: str,
        job_doc: dict[str, Any],
        milp: Any,
        decision: dict[str, int] | None = None,
    ) -> ChunkEvaluator:
        ev = self.evaluators.get(spec_hash)
        if ev is None:
            job = prepare_job(job_doc)
            ev = self.evaluators[spec_hash] = ChunkEvaluator(job, milp=milp, decision=decision)
            if len(self.evaluators) > 4:  # keep a few jobs' models, not all ever seen
                self.evaluators.pop(next(iter(self.evaluators)))
        return ev

    def _hooks(self, chunk: int, ids: np.ndarray) -> None:
        gate = os.environ.get(GATE_ENV)
        if gate and chunk > 0:
            deadline = time.monotonic() + 300
            passes = (Path(gate) / "open", Path(gate) / f"chunk-{chunk}")
            while not any(p.exists() for p in passes) and time.monotonic() < deadline:
                time.sleep(0.02)  # polling for the test's signal
        if self._crash_ids and not self._crash_ids.isdisjoint(ids.tolist()):
            os._exit(17)  # what a segfault or the OOM killer does to a worker

    def probe(
        self,
        spec_hash: str,
        job_doc: dict[str, Any],
        milp: Any,
        ids: Sequence[int],
        decision: dict[str, int] | None = None,
    ) -> int:
        """Evaluate scenarios without writing anything: does this subset kill the worker?"""
        arr = np.asarray(ids, dtype=np.int64)
        self._hooks(-1, arr)
        self._evaluator(spec_hash, job_doc, milp, decision).evaluate(arr)
        return len(arr)

    def decide(
        self, spec_hash: str, job_doc: dict[str, Any], milp: Any, task: Task
    ) -> dict[str, Any]:
        """One decide-mode task (`jobs.decide_tasks`): solves only, nothing written."""
        ev = self.deciders.get(spec_hash)
        if ev is None:
            ev = self.deciders[spec_hash] = DecisionEvaluator(prepare_job(job_doc), milp)
            while len(self.deciders) > 4:
                self.deciders.pop(next(iter(self.deciders)))
        return ev.run(task)

    def run(
        self,
        job_id: str,
        spec_hash: str,
        job_doc: dict[str, Any],
        milp: Any,
        chunk: int,
        start: int,
        stop: int,
        crashed: Sequence[int] = (),
        decision: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Evaluate scenarios start..stop-1 and write their part; `crashed` ids (found to
        kill their worker) are recorded as errors without being evaluated; `decision`: decide
        mode's chosen schedule, under which the scenarios are evaluated."""
        t0 = time.perf_counter()
        key = (job_id, chunk)
        result = self.unwritten.get(key)
        if result is None:
            ids = np.arange(start, stop, dtype=np.int64)
            live = np.setdiff1d(ids, np.asarray(crashed, dtype=np.int64))
            self._hooks(chunk, live)
            ev = self._evaluator(spec_hash, job_doc, milp, decision)
            result = ev.evaluate(ids, skip={int(i): CRASH_MESSAGE for i in crashed})
        t1 = time.perf_counter()
        try:
            if result.timeseries is not None:
                self.store.write_part(job_id, result.timeseries, chunk, "timeseries")
            path = self.store.write_part(job_id, result.scenarios, chunk, "scenarios")
        except Exception as exc:
            if not storage_fault(exc):
                raise  # a bug (e.g. a table pyarrow refuses): a rerun would fail the same way
            self.unwritten[key] = result
            while len(self.unwritten) > 4:  # bounded: results wait, memory does not grow
                self.unwritten.pop(next(iter(self.unwritten)))
            raise StorageUnavailable(f"storage {self.store.url}: {one_line(exc)}") from None
        self.unwritten.pop(key, None)
        status = result.scenarios.column("status").to_numpy(zero_copy_only=False)
        return {
            "chunk": chunk,
            "rows": result.scenarios.num_rows,
            "failed": int(np.sum(np.isin(status, [f.value for f in FAILED]))),
            "node": ray.get_runtime_context().get_node_id(),
            "path": path,
            "compute_seconds": t1 - t0,
            "seconds": time.perf_counter() - t0,
        }


RemoteChunkWorker = ray.remote(ChunkWorker)


def forwarded_env() -> dict[str, str]:
    """This process's settings that workers on any node need: object-storage credentials
    and endpoints, the log format, and the test hooks."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("AWS_", "FSSPEC_", "EDT_TEST_", "EDT_LOG_", "EDT_FAULT_"))
        or k.lower() in {"no_proxy"}
    }


def start_pool(store_url: str, size: int) -> list[Any]:
    env = forwarded_env()
    options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "num_cpus": 1}
    if env:
        options["runtime_env"] = {"env_vars": env}
    return [RemoteChunkWorker.options(**options).remote(store_url) for _ in range(size)]


def stop_pool(actors: list[Any]) -> None:
    for a in actors:
        ray.kill(a)
