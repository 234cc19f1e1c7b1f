"""What a failed chunk means (retry, wait, bisect, give up), and how long faults are waited out.

The queue is driven here by hand, as the supervisor drives it, with an oracle for which ids
kill their worker: bisection must find exactly those ids, whatever their number and place.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.chunk_queue import CHUNK_ATTEMPTS, ChunkQueue, Work
from jobs.faults import Backoff, Outage, StorageUnavailable, one_line, retry


def _drain(queue: ChunkQueue, crashing: set[int]) -> dict[int, list[int]]:
    """Run the queue to the end; a task whose ids meet `crashing` kills its worker, unless
    those ids are skipped as known crashers. Returns chunk -> ids recorded as crashed."""
    finished: dict[int, list[int]] = {}
    steps = 0
    while (taken := queue.take([0], set())) is not None:
        steps += 1
        assert steps < 10_000, "the queue never ends"
        work, _ = taken
        if work.probe is not None:
            ids = set(work.probe)
        else:
            lo, hi = queue.bounds[work.chunk]
            ids = set(range(lo, hi)) - set(queue.crashed_ids(work.chunk))
        if ids & crashing:
            assert queue.worker_died(work), f"chunk {work.chunk} given up"
        elif work.probe is not None:
            queue.probe_done(work)
        else:
            finished[work.chunk] = queue.crashed_ids(work.chunk)
    return finished


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 40),
    chunks=st.integers(1, 4),
    data=st.data(),
)
def test_bisection_finds_exactly_the_ids_that_kill_their_worker(
    size: int, chunks: int, data: st.DataObject
) -> None:
    total = size * chunks
    crashing = set(data.draw(st.lists(st.integers(0, total - 1), max_size=5)))
    bounds = {k: (k * size, (k + 1) * size) for k in range(chunks)}
    finished = _drain(ChunkQueue(range(chunks), bounds), crashing)
    assert sorted(finished) == list(range(chunks)), "every chunk ends committed"
    for k, (lo, hi) in bounds.items():
        assert finished[k] == sorted(i for i in crashing if lo <= i < hi)


def test_a_chunk_that_crashes_once_is_rerun_as_it_is() -> None:
    queue = ChunkQueue([0], {0: (0, 10)})
    work, _ = queue.take([0], set()) or (None, None)
    assert work is not None and queue.worker_died(work)
    again, _ = queue.take([0], set()) or (None, None)
    assert again is not None and again.probe is None and again.chunk == 0
    assert queue.crashed_ids(0) == []


def test_a_chunk_that_keeps_raising_is_given_up_after_its_attempts() -> None:
    queue = ChunkQueue([3], {3: (30, 40)})
    for _ in range(CHUNK_ATTEMPTS):
        taken = queue.take([0], set())
        assert taken is not None and queue.errored(taken[0])
    taken = queue.take([0], set())
    assert taken is not None and not queue.errored(taken[0])


def test_a_chunk_that_crashes_whatever_is_skipped_is_given_up() -> None:
    queue = ChunkQueue([0], {0: (0, 4)})
    for _ in range(100):
        taken = queue.take([0], set())
        assert taken is not None, "the queue ran dry before giving up"
        if not queue.worker_died(taken[0]):  # every task dies: a chunk-wide crash
            return
    pytest.fail("never given up")


def test_after_a_crash_each_actor_gets_one_task_at_a_time() -> None:
    queue = ChunkQueue([0, 1], {0: (0, 5), 1: (5, 10)})
    assert queue.take([0, 0], {0}) is not None  # two slots of actor 0 while all is well
    queue.worker_died(Work(0))
    assert queue.take([0], {0}) is None and queue.take([1], {0}) is not None


def test_a_storage_failure_waits_its_backoff_on_the_same_actor() -> None:
    queue = ChunkQueue([0], {0: (0, 5)})
    work, _ = queue.take([0, 1], set()) or (None, None)
    assert work is not None
    queue.storage_failed(work, 1, failures=1)
    assert queue.take([0, 1], set()) is None  # not due yet
    work.not_before = 0.0
    assert queue.take([0, 1], set()) == (work, 1)


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    b = Backoff(first=0.5, cap=4.0)
    for attempt, base in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)]:
        assert 0.8 * base <= b.delay(attempt) <= 1.2 * base


def test_retry_gives_up_after_its_budget_with_the_last_error() -> None:
    calls: list[int] = []
    waits: list[str] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(StorageUnavailable, match=r"storage s3://b unreachable.*nobody home"):
        retry(
            down,
            what="storage s3://b",
            budget=0.05,
            wrap=StorageUnavailable,
            on_wait=waits.append,
            backoff=Backoff(first=0.01, cap=0.01),
        )
    assert len(calls) >= 2 and waits and "waiting for storage s3://b" in waits[0]


def test_retry_raises_other_errors_at_once_and_returns_on_success() -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("select 1", {}, Exception("gone"))
        return 7

    def db(exc: Exception) -> bool:
        return isinstance(exc, sa.exc.DBAPIError)

    assert (
        retry(
            flaky,
            what="registry",
            budget=5,
            wrap=StorageUnavailable,
            transient=db,
            backoff=Backoff(first=0.001, cap=0.001),
        )
        == 7
    )
    with pytest.raises(KeyError):
        retry(lambda: {}["x"], what="registry", budget=5, wrap=StorageUnavailable, transient=db)


def test_an_outage_lasts_from_its_first_failure_to_its_first_success() -> None:
    o = Outage(budget=0.0)
    assert not o.expired and not o.recovered()
    o.failed("E: down")
    assert o.expired and o.last_error == "E: down"
    assert o.recovered() and not o.expired


def test_one_line_drops_newlines_colours_and_ray_wrappers() -> None:
    class WrapperError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray::Worker.run() traceback\n  File ...")
            self.cause = cause

    text = one_line(WrapperError(OSError("\x1b[31mdisk\nfull\x1b[0m")))
    assert text == "OSError: disk full"
    assert len(one_line(ValueError("x" * 1000), limit=50)) == 50
