"""Which chunk runs next, and what a failed chunk means: retry, wait, bisect or give up.

A chunk can come back four ways, and each means something else:
- committed: done;
- `StorageUnavailable`: the storage is down, the chunk is fine: run it again after a backoff
  (on the same actor, which kept the computed rows), while the outage lasts less than its
  budget (decided by the supervisor);
- its worker process died: once may be chance (a node lost, a process killed); twice means
  a scenario in it kills its worker, so the chunk's ids are bisected with `probe` tasks that
  evaluate without writing until each crashing id is alone, and the chunk then runs with
  those ids recorded as `error` scenarios;
- any other exception: a bug or a bad chunk; retried a few times, then the job fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from jobs.faults import Backoff

CHUNK_ATTEMPTS = 3
_BISECT_ROUNDS = 2


@dataclass
class Work:
    """One task for the pool: a chunk to run, or ids of a chunk to probe for crashes."""

    chunk: int
    probe: tuple[int, ...] | None = None
    not_before: float = 0.0
    prefer: int | None = None  # the actor that holds this chunk's unwritten result
    storage_failures: int = 0


@dataclass
class _Crashes:
    runs: int = 0  # runs of the whole chunk that killed their worker
    rounds: int = 0  # bisections started
    probing: int = 0  # probes in flight
    ids: set[int] = field(default_factory=set)  # ids found to kill their worker
    suspects: set[int] = field(default_factory=set)  # lone ids that crashed once


class ChunkQueue:
    def __init__(self, chunks: Iterable[int], bounds: dict[int, tuple[int, int]]) -> None:
        self.items = [Work(k) for k in chunks]
        self.bounds = bounds  # chunk -> (first id, end id)
        self.errors: dict[int, int] = {}
        self.crashes: dict[int, _Crashes] = {}
        self.backoff = Backoff()

    def __len__(self) -> int:
        return len(self.items)

    def clear(self) -> None:
        self.items.clear()

    @property
    def one_per_actor(self) -> bool:
        """Once a worker has died, each actor gets one task at a time: a task queued behind
        a crashing one would die with it, and a probe must only see its own crash."""
        return bool(self.crashes)

    def take(self, free: list[int], busy: set[int]) -> tuple[Work, int] | None:
        """The first work item due now and the actor to give it to (its preferred actor if
        that one is free); `free`: actors with a free slot, `busy`: with a task in flight."""
        free = [a for a in free if not (self.one_per_actor and a in busy)]
        if not free:
            return None
        now = time.monotonic()
        for i, w in enumerate(self.items):
            if w.not_before <= now:
                actor = w.prefer if w.prefer in free else free[0]
                return self.items.pop(i), actor
        return None

    def crashed_ids(self, chunk: int) -> list[int]:
        c = self.crashes.get(chunk)
        return sorted(c.ids) if c else []

    def storage_failed(self, work: Work, actor: int, failures: int) -> None:
        work.not_before = time.monotonic() + self.backoff.delay(failures - 1)
        work.storage_failures += 1
        # The actor keeps the computed rows; after a few failures it may be the actor that
        # cannot reach the storage, so any actor may take the chunk (and recompute it).
        work.prefer = actor if work.storage_failures <= 2 else None
        self.items.insert(0, work)

    def requeue(self, work: Work) -> None:
        """Run the work again as it is (its worker was lost through no fault of its own)."""
        self.items.insert(0, Work(work.chunk, probe=work.probe))  # a probe stays counted

    def errored(self, work: Work) -> bool:
        """An exception that is not infrastructure; False once the chunk is out of attempts."""
        if work.probe is not None:
            return self.probe_done(work)  # the probe did not crash its worker
        self.errors[work.chunk] = self.errors.get(work.chunk, 0) + 1
        if self.errors[work.chunk] > CHUNK_ATTEMPTS:
            return False
        self.items.insert(0, Work(work.chunk))
        return True

    def worker_died(self, work: Work) -> bool:
        """The task's worker process died; False once the chunk cannot be isolated."""
        c = self.crashes.setdefault(work.chunk, _Crashes())
        if work.probe is not None:
            c.probing -= 1
            if len(work.probe) == 1:
                # One crash of a lone scenario may still be chance (a process killed from
                # outside): it is recorded as a crasher only when it crashes twice.
                if work.probe[0] in c.suspects:
                    c.ids.add(work.probe[0])
                else:
                    c.suspects.add(work.probe[0])
                    self._probe(work.chunk, c, [work.probe])
            else:
                half = len(work.probe) // 2
                self._probe(work.chunk, c, [work.probe[:half], work.probe[half:]])
            self._maybe_rerun(work.chunk, c)
            return True
        c.runs += 1
        if c.runs == 1:  # may be chance: run it again as it is
            self.items.insert(0, Work(work.chunk))
            return True
        if c.rounds >= _BISECT_ROUNDS:
            return False
        c.rounds += 1
        lo, hi = self.bounds[work.chunk]
        ids = tuple(i for i in range(lo, hi) if i not in c.ids)
        half = len(ids) // 2
        self._probe(work.chunk, c, [ids[:half], ids[half:]])
        self._maybe_rerun(work.chunk, c)
        return True

    def probe_done(self, work: Work) -> bool:
        c = self.crashes[work.chunk]
        c.probing -= 1
        self._maybe_rerun(work.chunk, c)
        return True

    def _probe(self, chunk: int, c: _Crashes, parts: list[tuple[int, ...]]) -> None:
        for part in parts:
            if part:
                c.probing += 1
                self.items.insert(0, Work(chunk, probe=part))

    def _maybe_rerun(self, chunk: int, c: _Crashes) -> None:
        if c.probing == 0:
            self.items.append(Work(chunk))
