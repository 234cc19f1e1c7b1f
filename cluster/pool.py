"""Long-lived Ray actors that evaluate chunks and write their part files.

One actor per CPU by default. An actor keeps the evaluator of each job it has seen (the built
MILP model lives there), so only the first chunk of a job pays for building it. Actors are
restarted when their process dies (`max_restarts=-1`) and a chunk in flight on a dead actor is
run again (`max_task_retries`): writing a part is idempotent (same name, atomic replace), so a
re-run chunk never duplicates rows.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import ray

from jobs.evaluate import ChunkEvaluator
from jobs.spec import prepare_job
from jobs.storage import ResultStore

TASK_RETRIES = 3


class ChunkWorker:
    def __init__(self, store_url: str) -> None:
        self.store = ResultStore(store_url)
        self.evaluators: dict[str, ChunkEvaluator] = {}

    def pid(self) -> int:
        return os.getpid()

    def run(
        self,
        job_id: str,
        spec_hash: str,
        job_doc: dict[str, Any],
        chunk: int,
        start: int,
        stop: int,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        ev = self.evaluators.get(spec_hash)
        if ev is None:
            ev = self.evaluators[spec_hash] = ChunkEvaluator(prepare_job(job_doc))
            if len(self.evaluators) > 4:  # keep a few jobs' models, not all ever seen
                self.evaluators.pop(next(iter(self.evaluators)))
        result = ev.evaluate(np.arange(start, stop, dtype=np.int64))
        t1 = time.perf_counter()
        if result.timeseries is not None:
            self.store.write_part(job_id, result.timeseries, chunk, "timeseries")
        path = self.store.write_part(job_id, result.scenarios, chunk, "scenarios")
        status = result.scenarios.column("status").to_numpy(zero_copy_only=False)
        return {
            "chunk": chunk,
            "rows": result.scenarios.num_rows,
            "failed": int(np.sum(status != "ok")),
            "node": ray.get_runtime_context().get_node_id(),
            "path": path,
            "compute_seconds": t1 - t0,
            "seconds": time.perf_counter() - t0,
        }


RemoteChunkWorker = ray.remote(ChunkWorker)


def _forwarded_env() -> dict[str, str]:
    """The driver's object-storage settings, which workers on any node need to write parts."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("AWS_", "FSSPEC_")) or k.lower() in {"no_proxy"}
    }


def start_pool(store_url: str, size: int) -> list[Any]:
    env = _forwarded_env()
    options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": TASK_RETRIES, "num_cpus": 1}
    if env:
        options["runtime_env"] = {"env_vars": env}
    return [RemoteChunkWorker.options(**options).remote(store_url) for _ in range(size)]


def stop_pool(actors: list[Any]) -> None:
    for a in actors:
        ray.kill(a)
