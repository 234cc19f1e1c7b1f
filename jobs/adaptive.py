"""Adaptive Monte Carlo on a job: the stopping rule, checked on the committed prefix of ids.

`PrefixMonitor` follows a job's committed chunks and, at each of the rule's checkpoints n (in
increasing order), once every chunk holding an id below n is committed, evaluates the rule on
scenario ids 0..n-1 read back from the parts. Completion order never matters: the stopping n
is a function of the spec and seed alone, whatever the chunk size or number of workers. The
checkpoint values come from committed parts only, so a resumed run re-derives the same history.

Scenarios computed beyond the stopping point (chunks already in flight when it was reached)
are kept out of the final dataset: `trim_to_prefix` cuts the boundary part to ids < n and
deletes the parts after it, and their count is recorded as `extra_scenarios_discarded`.
`evaluate_until` runs the same loop sequentially, without Ray (tests, benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edt_compute.convergence import StoppingRule
from jobs.evaluate import ChunkEvaluator
from jobs.registry import ChunkRecord
from jobs.spec import PreparedJob
from jobs.storage import PartKind, ResultStore
from jobs.summary import OK_STATUSES

__all__ = ["AdaptiveResult", "PrefixMonitor", "evaluate_until", "trim_to_prefix"]


class PrefixMonitor:
    """Evaluates a job's stopping rule at its checkpoints over committed chunks.

    `load(k, columns)` returns chunk k's scenario rows with at least `columns` (scenario_id,
    status and the targets' metrics); each chunk is loaded once, when a checkpoint first
    needs it.
    """

    def __init__(
        self, job: PreparedJob, chunk_size: int, load: Callable[[int, list[str]], pa.Table]
    ) -> None:
        rule = job.stopping_rule
        if rule is None:
            raise ValueError(f"job {job.spec.name!r} has no `until` stopping rule")
        self.rule: StoppingRule = rule
        self.size = chunk_size
        self.total = job.total
        self.load = load
        self.history: list[dict[str, Any]] = []
        self.stop_n: int | None = None
        self.met = False
        self._next: int | None = rule.min_samples
        self._committed: set[int] = set()
        self._contiguous = 0  # chunks 0.._contiguous-1 are committed
        self._values: dict[int, dict[str, np.ndarray]] = {}

    @property
    def metrics(self) -> list[str]:
        """The metric columns the rule reads."""
        return list(dict.fromkeys(t.metric for t in self.rule.targets))

    @property
    def columns(self) -> list[str]:
        return ["scenario_id", "status", *self.metrics]

    @property
    def stopped(self) -> bool:
        return self.stop_n is not None

    @property
    def latest(self) -> list[dict[str, Any]]:
        """History rows of the last evaluated checkpoint (one per target)."""
        return self.history[-len(self.rule.targets) :] if self.history else []

    def last_chunk(self) -> int | None:
        """Index of the chunk holding the last id of the final dataset, once stopped."""
        return None if self.stop_n is None else (self.stop_n - 1) // self.size

    def commit(self, chunk: int) -> None:
        self._committed.add(chunk)
        while self._contiguous in self._committed:
            self._contiguous += 1

    def advance(self) -> bool:
        """Evaluate every checkpoint whose id prefix is committed; True once stopped."""
        while self.stop_n is None and self._next is not None:
            n = self._next
            if min(self._contiguous * self.size, self.total) < n:
                break
            met, rows = self.rule.evaluate(self._prefix(n))
            self.history.extend(rows)
            if met or n >= self.rule.max_samples:
                self.stop_n, self.met = n, met
            self._next = self.rule.next_checkpoint(n)
        return self.stopped

    def _prefix(self, n: int) -> dict[str, np.ndarray]:
        chunks = range(math.ceil(n / self.size))
        return {m: np.concatenate([self._chunk(k)[m] for k in chunks])[:n] for m in self.metrics}

    def _chunk(self, k: int) -> dict[str, np.ndarray]:
        if k not in self._values:
            table = self.load(k, self.columns).sort_by("scenario_id")
            ids = table.column("scenario_id").to_numpy()
            start = k * self.size
            # A boundary part trimmed by an earlier, interrupted finish is shorter: fine, as
            # long as it starts at its first id and runs on without gaps.
            if ids.size == 0 or ids[0] != start or np.any(np.diff(ids) != 1):
                raise RuntimeError(f"chunk {k}: scenario ids do not run on from {start}")
            status = table.column("status").to_numpy(zero_copy_only=False).astype(str)
            ok = np.isin(status, OK_STATUSES)
            self._values[k] = {
                m: np.where(ok, table.column(m).to_numpy(zero_copy_only=False), np.nan)
                for m in self.metrics
            }
        return self._values[k]

    def report(self, extra_scenarios_discarded: int = 0) -> dict[str, Any]:
        """The `convergence` section of summary.json (also convergence.json while running)."""
        rule = self.rule
        return {
            "targets": [t.model_dump(mode="json") for t in rule.targets],
            "confidence": rule.confidence,
            "interval_method": "rqmc_replicates" if rule.replicates else "independent_draws",
            "replicates": rule.replicates,
            "min_samples": rule.min_samples,
            "max_samples": rule.max_samples,
            "checkpoint": rule.checkpoint,
            "n": self.stop_n,
            "met": self.met,
            "stopped_by": None
            if self.stop_n is None
            else ("targets" if self.met else "max_samples"),
            "extra_scenarios_discarded": extra_scenarios_discarded,
            "history": self.history,
        }


def trim_to_prefix(
    store: ResultStore, job_id: str, n: int, chunk_size: int, chunks: Iterable[ChunkRecord]
) -> int:
    """Make the job's parts hold exactly scenario ids 0..n-1; return the rows discarded.

    The boundary part is rewritten (atomically) with its rows below n, parts after it are
    deleted. Idempotent, so a finish interrupted halfway can simply run again.
    """
    last = (n - 1) // chunk_size
    kinds: tuple[PartKind, ...] = ("scenarios", "timeseries")
    for kind in kinds:
        for k in store.list_parts(job_id, kind):
            if k > last:
                store.delete_part(job_id, k, kind)
            elif k == last:
                part = store.read_part(job_id, k, kind)
                keep = part.filter(pc.less(part.column("scenario_id"), n))
                if keep.num_rows < part.num_rows:
                    store.write_part(job_id, keep, k, kind)
    return sum(c.rows for c in chunks) - n


@dataclass
class AdaptiveResult:
    scenarios: pa.Table
    monitor: PrefixMonitor


def evaluate_until(job: PreparedJob, chunk_size: int = 1000) -> AdaptiveResult:
    """Run an adaptive job sequentially in this process: chunks in id order until it stops.

    The same rule on the same id prefix as the Ray supervisor, hence the same stopping n and
    bit-identical rows.
    """
    evaluator = ChunkEvaluator(job)
    parts: dict[int, pa.Table] = {}
    monitor = PrefixMonitor(job, chunk_size, lambda k, _columns: parts[k])
    k = 0
    while not monitor.advance():
        ids = np.arange(k * chunk_size, min((k + 1) * chunk_size, job.total), dtype=np.int64)
        parts[k] = evaluator.evaluate(ids).scenarios
        monitor.commit(k)
        k += 1
    assert monitor.stop_n is not None
    table = pa.concat_tables([parts[i] for i in range(k)], promote_options="default")
    table = table.filter(pc.less(table.column("scenario_id"), monitor.stop_n))
    return AdaptiveResult(table, monitor)
