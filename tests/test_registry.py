"""The job registry, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import pickle
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.registry import InvalidTransition, JobExists, JobNotFound, Registry
from jobs.status import TERMINAL_STATUSES, JobStatus


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    with Registry(registry_url) as reg:
        yield reg


def _job(reg: Registry, name: str = "job", **kwargs: Any) -> str:
    record = reg.create_job(
        kwargs.pop("job_id", None),
        name,
        spec={"scenarios": 10, "model": {"name": name}},
        spec_hash="abc123",
        total_scenarios=10,
        total_chunks=3,
        **kwargs,
    )
    return record.id


def test_new_job_is_queued_with_a_sortable_generated_id(registry: Registry) -> None:
    job = registry.get(_job(registry, "alpha", tenant="t1", priority=2, labels={"k": "v"}))
    assert re.fullmatch(r"job-\d{14}-[0-9a-f]{6}", job.id)
    assert job.status is JobStatus.QUEUED
    assert (job.name, job.tenant, job.priority, job.labels) == ("alpha", "t1", 2, {"k": "v"})
    assert job.spec == {"scenarios": 10, "model": {"name": "alpha"}}
    assert (job.spec_hash, job.total_scenarios, job.total_chunks) == ("abc123", 10, 3)
    assert (job.scenarios_done, job.scenarios_failed, job.cancel_requested) == (0, 0, False)
    assert job.error is job.started_at is job.finished_at is None
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)


def test_creating_a_job_with_a_taken_id_raises_job_exists(registry: Registry) -> None:
    _job(registry, job_id="my-job")
    with pytest.raises(JobExists):
        _job(registry, job_id="my-job")


def test_unsafe_job_ids_are_refused(registry: Registry) -> None:
    for bad in ["../etc", "a/b", "", "x" * 65]:
        with pytest.raises(ValueError):
            _job(registry, job_id=bad)


def test_unknown_job_raises_job_not_found(registry: Registry) -> None:
    with pytest.raises(JobNotFound):
        registry.get("nope")
    with pytest.raises(JobNotFound):
        registry.set_status("nope", JobStatus.RUNNING)
    with pytest.raises(JobNotFound):
        registry.request_cancel("nope")
    with pytest.raises(JobNotFound):
        registry.update_progress("nope", 1, 0)
    with pytest.raises(JobNotFound):
        registry.record_chunk("nope", 0, 5, "node", "path")
    with pytest.raises(JobNotFound):
        registry.committed_chunks("nope")


def test_lifecycle_stamps_start_and_finish_times_in_utc(registry: Registry) -> None:
    job_id = _job(registry)
    running = registry.set_status(job_id, JobStatus.RUNNING)
    assert running.status is JobStatus.RUNNING
    assert running.started_at is not None and running.finished_at is None
    assert running.started_at.tzinfo is not None
    assert running.started_at >= running.created_at

    # A repeated "running" (e.g. a resumed driver) keeps the first start time.
    again = registry.set_status(job_id, JobStatus.RUNNING)
    assert again.started_at == running.started_at

    done = registry.set_status(job_id, JobStatus.SUCCEEDED)
    assert done.status is JobStatus.SUCCEEDED
    assert done.finished_at is not None and done.finished_at >= running.started_at
    assert done.finished_at.utcoffset() == timedelta(0)
    assert registry.get(job_id) == done


def test_failure_records_the_error(registry: Registry) -> None:
    job_id = _job(registry)
    registry.set_status(job_id, JobStatus.RUNNING)
    failed = registry.set_status(job_id, JobStatus.FAILED, error="solver exploded")
    assert (failed.status, failed.error) == (JobStatus.FAILED, "solver exploded")


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_a_terminal_job_refuses_every_further_transition(
    registry: Registry, terminal: JobStatus
) -> None:
    job_id = _job(registry)
    registry.set_status(job_id, JobStatus.RUNNING)
    final = registry.set_status(job_id, terminal, error="e" if terminal == "failed" else None)
    assert final.status is terminal and final.finished_at is not None
    for target in JobStatus:
        with pytest.raises(InvalidTransition):
            registry.set_status(job_id, target)
    assert registry.get(job_id) == final


def test_only_finished_states_are_terminal() -> None:
    assert {s for s in JobStatus if s.is_terminal()} == {"succeeded", "failed", "cancelled"}
    assert JobStatus("queued") is JobStatus.QUEUED and f"{JobStatus.RUNNING}" == "running"


def test_recording_a_chunk_twice_keeps_one_row(registry: Registry) -> None:
    job_id = _job(registry)
    assert registry.committed_chunks(job_id) == set()
    assert registry.record_chunk(job_id, 1, 4, "node-a", "s3://b/p/part-00001.parquet")
    assert not registry.record_chunk(job_id, 1, 4, "node-b", "s3://b/p/part-00001.parquet")
    assert registry.record_chunk(job_id, 0, 3, "node-a", "s3://b/p/part-00000.parquet")
    assert registry.committed_chunks(job_id) == {0, 1}
    chunks = registry.chunks(job_id)
    assert [(c.chunk_index, c.rows, c.node) for c in chunks] == [(0, 3, "node-a"), (1, 4, "node-a")]
    assert all(c.job_id == job_id and c.committed_at.tzinfo is not None for c in chunks)


def test_chunks_belong_to_their_own_job(registry: Registry) -> None:
    a, b = _job(registry, "a"), _job(registry, "b")
    registry.record_chunk(a, 0, 1, "n", "pa")
    registry.record_chunk(b, 0, 1, "n", "pb")
    registry.record_chunk(b, 2, 1, "n", "pb2")
    assert registry.committed_chunks(a) == {0}
    assert registry.committed_chunks(b) == {0, 2}


def test_progress_is_stored_as_absolute_counts(registry: Registry) -> None:
    job_id = _job(registry)
    registry.update_progress(job_id, 4, 1)
    registry.update_progress(job_id, 7, 2)
    job = registry.get(job_id)
    assert (job.scenarios_done, job.scenarios_failed) == (7, 2)
    with pytest.raises(ValueError):
        registry.update_progress(job_id, -1, 0)


def test_cancelling_a_queued_job_cancels_it_at_once(registry: Registry) -> None:
    job_id = _job(registry)
    job = registry.request_cancel(job_id)
    assert job.status is JobStatus.CANCELLED and job.cancel_requested
    assert job.finished_at is not None
    assert registry.claim_next_queued() is None


def test_cancelling_a_running_job_raises_the_flag_for_its_supervisor(registry: Registry) -> None:
    job_id = _job(registry)
    registry.set_status(job_id, JobStatus.RUNNING)
    job = registry.request_cancel(job_id)
    assert job.status is JobStatus.RUNNING and job.cancel_requested
    assert registry.get(job_id).cancel_requested
    stopped = registry.set_status(job_id, JobStatus.CANCELLED)
    assert stopped.status is JobStatus.CANCELLED and stopped.finished_at is not None


def test_cancelling_a_finished_job_changes_nothing(registry: Registry) -> None:
    job_id = _job(registry)
    registry.set_status(job_id, JobStatus.RUNNING)
    done = registry.set_status(job_id, JobStatus.SUCCEEDED)
    assert registry.request_cancel(job_id) == done


def test_claim_takes_highest_priority_then_oldest(registry: Registry) -> None:
    low_old = _job(registry, "low-old", priority=0)
    high_old = _job(registry, "high-old", priority=5)
    low_new = _job(registry, "low-new", priority=0)
    high_new = _job(registry, "high-new", priority=5)
    claimed = []
    while (job := registry.claim_next_queued()) is not None:
        assert job.status is JobStatus.RUNNING and job.started_at is not None
        claimed.append(job.id)
    assert claimed == [high_old, high_new, low_old, low_new]


def test_concurrent_claims_never_hand_out_a_job_twice(registry_url: str) -> None:
    with Registry(registry_url) as setup:
        ids = {_job(setup, f"j{i}") for i in range(20)}
    claimed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def scheduler() -> None:
        try:
            with Registry(registry_url) as reg:
                while (job := reg.claim_next_queued()) is not None:
                    with lock:
                        claimed.append(job.id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(claimed) == sorted(ids)


def test_list_jobs_filters_by_tenant_and_status_newest_first(registry: Registry) -> None:
    a1 = _job(registry, "a1", tenant="a")
    b1 = _job(registry, "b1", tenant="b")
    a2 = _job(registry, "a2", tenant="a")
    registry.set_status(a2, JobStatus.RUNNING)
    assert [j.id for j in registry.list_jobs()] == [a2, b1, a1]
    assert [j.id for j in registry.list_jobs(tenant="a")] == [a2, a1]
    assert [j.id for j in registry.list_jobs(status=JobStatus.QUEUED)] == [b1, a1]
    assert [j.id for j in registry.list_jobs(tenant="a", status=JobStatus.RUNNING)] == [a2]
    assert [j.id for j in registry.list_jobs(limit=1, offset=1)] == [b1]


def test_registry_survives_pickling(registry: Registry) -> None:
    job_id = _job(registry)
    clone = pickle.loads(pickle.dumps(registry))
    try:
        assert clone.url == registry.url
        assert clone.get(job_id) == registry.get(job_id)
    finally:
        clone.close()


def test_two_registries_on_one_sqlite_file_see_each_others_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Registry(url) as api, Registry(url) as driver:
        job_id = _job(api)
        assert driver.claim_next_queued() is not None
        assert api.get(job_id).status is JobStatus.RUNNING
        api.request_cancel(job_id)
        assert driver.get(job_id).cancel_requested
        driver.record_chunk(job_id, 0, 10, "n", "p")
        driver.update_progress(job_id, 10, 0)
        assert api.committed_chunks(job_id) == {0}
        assert api.get(job_id).scenarios_done == 10
    with sqlite3.connect(tmp_path / "shared.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_sqlite_file_in_a_missing_folder_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(sa.exc.OperationalError):
        Registry(f"sqlite:///{tmp_path / 'new' / 'dir' / 'registry.db'}")
    assert not (tmp_path / "new").exists()


def test_concurrent_sqlite_writers_wait_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    with Registry(url) as setup:
        job_id = _job(setup)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            with Registry(url) as reg:
                for i in range(25):
                    reg.record_chunk(job_id, worker * 100 + i, 1, f"w{worker}", "p")
                    reg.update_progress(job_id, i, 0)
                    reg.get(job_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Registry(url) as reg:
        assert len(reg.committed_chunks(job_id)) == 100


def test_times_are_utc_whatever_the_local_zone(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as time_module

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a zone whose offset cannot hide
    time_module.tzset()
    try:
        before = datetime.now(UTC)
        job = registry.get(_job(registry))
        after = datetime.now(UTC)
    finally:
        monkeypatch.undo()
        time_module.tzset()
    assert job.created_at.tzinfo == UTC
    assert before - timedelta(seconds=1) <= job.created_at <= after + timedelta(seconds=1)


def test_take_over_is_a_compare_and_set_on_the_runner(registry: Registry) -> None:
    from jobs.registry import JobBusy

    job_id = _job(registry)
    first = registry.take_over(job_id, "host:1:a", None)
    assert first.runner == "host:1:a" and first.heartbeat_at is not None
    with pytest.raises(JobBusy):
        registry.take_over(job_id, "host:2:b", None)  # it is no longer unowned
    assert registry.take_over(job_id, "host:2:b", "host:1:a").runner == "host:2:b"
    assert not registry.heartbeat(job_id, "host:1:a")  # the old runner learns it lost the job
    assert registry.heartbeat(job_id, "host:2:b")


def test_a_registry_made_before_the_runner_columns_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from jobs.registry import jobs_table

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.MetaData()
    sa.Table(
        "edt_jobs",
        old,
        *[c._copy() for c in jobs_table.columns if c.name not in {"runner", "heartbeat_at"}],
    )
    old.create_all(sa.create_engine(url))
    reg = Registry(url)
    job_id = _job(reg)
    assert reg.take_over(job_id, "h:1:a", None).runner == "h:1:a"
