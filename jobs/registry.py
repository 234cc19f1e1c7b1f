"""Durable job registry on SQLAlchemy Core: SQLite file by default, PostgreSQL by URL.

Every state change is one conditional UPDATE whose WHERE clause states the precondition
(e.g. "not terminal"); the affected row count tells whether it applied. That keeps changes
atomic without row locks or RETURNING, on both SQLite (whose Python driver only opens a
transaction at the first write) and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine

from jobs.registry_tables import (
    ChunkRecord,
    JobRecord,
    UTCDateTime,
    add_new_columns,
    chunks_table,
    jobs_table,
    metadata,
)
from jobs.status import TERMINAL_STATUSES, JobStatus, check_job_id, new_job_id

__all__ = [
    "ChunkRecord",
    "InvalidTransition",
    "JobExists",
    "JobNotFound",
    "JobRecord",
    "Registry",
    "RegistryError",
]

_SQLITE_BUSY_TIMEOUT_MS = 30_000
_TERMINAL = [s.value for s in TERMINAL_STATUSES]


class RegistryError(Exception):
    """Base class of the registry's own errors."""


# The names below are the agreed API (JobNotFound, InvalidTransition), hence the noqa.
class JobNotFound(RegistryError, LookupError):  # noqa: N818
    """No job has this id."""


class JobExists(RegistryError):  # noqa: N818
    """A job with this id already exists."""


class JobBusy(RegistryError):  # noqa: N818
    """Another supervisor runs the job."""


class InvalidTransition(RegistryError):  # noqa: N818
    """The job is in a terminal state and can no longer change."""


def _now() -> datetime:
    return datetime.now(UTC)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API server read while a driver writes; NORMAL sync is safe under WAL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pre_ping: a long-lived server survives PostgreSQL restarts and idle disconnects.
        return sa.create_engine(url, pool_pre_ping=True)
    # The folder must exist (jobs.config checks it; the CLI creates only its default home).
    engine = sa.create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
    sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    # Two processes starting on a fresh database race between "table exists?" and
    # CREATE TABLE; the loser's error is harmless, so retry until the check passes.
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            add_new_columns(engine)
            return
        except sa.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class Registry:
    """The jobs and their committed chunks, shared by API server, scheduler and supervisors.

    Safe to use from several threads and processes at once. Picklable (only the URL travels),
    so it can be handed to a Ray actor, which reconnects on arrival.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine = _make_engine(url)
        _create_tables(self._engine)

    def __reduce__(self) -> tuple[type[Registry], tuple[str]]:
        return (Registry, (self._url,))

    def __repr__(self) -> str:
        return f"Registry({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def engine(self) -> Engine:
        """The one pool of connections (with its SQLite pragmas), for read-only aggregate
        queries over `jobs.registry_tables` (the API's usage figures): never a second pool."""
        return self._engine

    def close(self) -> None:
        """Release pooled connections (the registry reconnects if used again)."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- jobs -----------------------------------------------------------------------

    def create_job(
        self,
        job_id: str | None,
        name: str,
        spec: Mapping[str, Any],
        spec_hash: str,
        total_scenarios: int,
        total_chunks: int,
        tenant: str = "default",
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        storage: str | None = None,
    ) -> JobRecord:
        """Insert a queued job; ``job_id=None`` generates one. Raises JobExists.

        ``storage`` is the URL of the results root the job writes to (never credentials).
        """
        if total_scenarios < 0 or total_chunks < 0:
            raise ValueError("total_scenarios and total_chunks must be >= 0")
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        values = {
            "id": job_id,
            "name": name,
            "status": JobStatus.QUEUED.value,
            "tenant": tenant,
            "priority": priority,
            "labels": dict(labels or {}),
            "spec": dict(spec),
            "spec_hash": spec_hash,
            "total_scenarios": total_scenarios,
            "total_chunks": total_chunks,
            "scenarios_done": 0,
            "scenarios_failed": 0,
            "error": None,
            "cancel_requested": False,
            "created_at": _now(),
            "storage": storage,
            "interruptions": 0,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(jobs_table.insert().values(**values))
                return self._fetch(conn, job_id)
        except sa.exc.IntegrityError as exc:
            raise JobExists(job_id) from exc

    def get(self, job_id: str) -> JobRecord:
        """The job with this id. Raises JobNotFound."""
        with self._engine.connect() as conn:
            return self._fetch(conn, job_id)

    def list_jobs(
        self,
        tenant: str | None = None,
        status: JobStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        """Jobs, newest first, optionally of one tenant and/or status."""
        query = sa.select(jobs_table).order_by(jobs_table.c.seq.desc()).limit(limit)
        if offset:
            query = query.offset(offset)
        if tenant is not None:
            query = query.where(jobs_table.c.tenant == tenant)
        if status is not None:
            query = query.where(jobs_table.c.status == JobStatus(status).value)
        with self._engine.connect() as conn:
            return [JobRecord.from_row(row) for row in conn.execute(query)]

    def set_status(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None = None,
        runner: str | None = None,
    ) -> JobRecord:
        """Move a job to ``status``, stamping started_at (first run) and finished_at (terminal).

        With ``runner``, only if that runner still owns the job (a superseded supervisor must
        not end its successor's job): JobBusy otherwise. Raises InvalidTransition if the job
        is already terminal, JobNotFound if unknown.
        """
        status = JobStatus(status)
        now = sa.literal(_now(), UTCDateTime())
        values: dict[str, Any] = {"status": status.value, "error": error, "message": None}
        if status is JobStatus.RUNNING:
            values["started_at"] = sa.func.coalesce(jobs_table.c.started_at, now)
        if status is JobStatus.INTERRUPTED:
            # Nobody runs it any more: the next supervisor takes it without waiting for the
            # last one's heartbeat to go stale.
            values["runner"] = None
            values["interruptions"] = sa.func.coalesce(jobs_table.c.interruptions, 0) + 1
        if status.is_terminal():
            values["finished_at"] = now
        with self._engine.begin() as conn:
            if not self._update_live(conn, job_id, values, runner):
                current = self._fetch(conn, job_id)
                if runner is not None and not current.status.is_terminal():
                    raise JobBusy(f"job {job_id} now belongs to {current.runner}")
                raise InvalidTransition(
                    f"job {job_id} is {current.status.value}; cannot move it to {status.value}"
                )
            return self._fetch(conn, job_id)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask for a job to stop: a queued (or interrupted) job is cancelled at once; a running job gets the
        ``cancel_requested`` flag its supervisor polls; a finished job is left as it is.
        Returns the job as it now stands. Raises JobNotFound.
        """
        now = sa.literal(_now(), UTCDateTime())
        with self._engine.begin() as conn:
            # Queued or interrupted: no supervisor would see the flag, so cancel at once.
            cancelled_queued = conn.execute(
                jobs_table.update()
                .where(
                    jobs_table.c.id == job_id,
                    jobs_table.c.status.in_([JobStatus.QUEUED.value, JobStatus.INTERRUPTED.value]),
                )
                .values(status=JobStatus.CANCELLED.value, cancel_requested=True, finished_at=now)
            ).rowcount
            if not cancelled_queued:
                self._update_live(conn, job_id, {"cancel_requested": True})
            return self._fetch(conn, job_id)

    def update_progress(self, job_id: str, scenarios_done: int, scenarios_failed: int) -> None:
        """Record absolute progress counts (idempotent, so a retried report is harmless)."""
        if scenarios_done < 0 or scenarios_failed < 0:
            raise ValueError("progress counts must be >= 0")
        with self._engine.begin() as conn:
            updated = conn.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id)
                .values(scenarios_done=scenarios_done, scenarios_failed=scenarios_failed)
            ).rowcount
        if not updated:
            raise JobNotFound(job_id)

    def finish_adaptive(self, job_id: str, stopped_at: int, scenarios_failed: int) -> None:
        """An adaptive job's counts are those of the prefix that met its rule: its total
        becomes the stopping n (the cap stays in the spec and the manifest)."""
        with self._engine.begin() as conn:
            self._update_live(
                conn,
                job_id,
                {
                    "total_scenarios": stopped_at,
                    "scenarios_done": stopped_at,
                    "scenarios_failed": scenarios_failed,
                },
            )

    def set_message(self, job_id: str, message: str | None) -> None:
        """Say what a live job waits for (None: nothing); ignored once the job is terminal."""
        with self._engine.begin() as conn:
            self._update_live(conn, job_id, {"message": message})

    def take_over(self, job_id: str, runner: str, expected_runner: str | None) -> JobRecord:
        """Become the job's runner if its runner is still `expected_runner` (compare-and-set).

        Raises JobBusy when another supervisor changed it first, InvalidTransition when the job
        is finished.
        """
        c = jobs_table.c
        same = c.runner.is_(None) if expected_runner is None else c.runner == expected_runner
        with self._engine.begin() as conn:
            updated = conn.execute(
                jobs_table.update()
                .where(c.id == job_id, same, c.status.not_in(_TERMINAL))
                .values(runner=runner, heartbeat_at=_now())
            ).rowcount
            record = self._fetch(conn, job_id)
        if updated:
            return record
        if record.status.is_terminal():
            raise InvalidTransition(f"job {job_id} is {record.status.value}")
        raise JobBusy(f"job {job_id} was taken over by {record.runner}")

    def heartbeat(self, job_id: str, runner: str) -> bool:
        """Say the runner is alive; False if another runner has taken the job over."""
        c = jobs_table.c
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    jobs_table.update()
                    .where(c.id == job_id, c.runner == runner)
                    .values(heartbeat_at=_now())
                ).rowcount
            )

    def claim_next_queued(self) -> JobRecord | None:
        """Atomically move the highest-priority, oldest queued job to running and return it.

        PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so concurrent schedulers take
        different jobs without waiting. SQLite (which ignores FOR UPDATE): the conditional
        UPDATE takes the database write lock; if another scheduler won the row, look again.
        """
        candidate = (
            sa.select(jobs_table.c.id)
            .where(jobs_table.c.status == JobStatus.QUEUED.value)
            .order_by(jobs_table.c.priority.desc(), jobs_table.c.seq.asc())
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        now = sa.literal(_now(), UTCDateTime())
        with self._engine.begin() as conn:
            while (job_id := conn.execute(candidate).scalar()) is not None:
                claimed = conn.execute(
                    jobs_table.update()
                    .where(
                        jobs_table.c.id == job_id,
                        jobs_table.c.status == JobStatus.QUEUED.value,
                    )
                    .values(
                        status=JobStatus.RUNNING.value,
                        started_at=sa.func.coalesce(jobs_table.c.started_at, now),
                    )
                ).rowcount
                if claimed:
                    return self._fetch(conn, job_id)
        return None

    # ---- chunks ---------------------------------------------------------------------

    def record_chunk(
        self,
        job_id: str,
        chunk_index: int,
        rows: int,
        node: str,
        path: str,
        compute_seconds: float | None = None,
    ) -> bool:
        """Record a chunk as committed. Idempotent: the first record wins and later ones
        are ignored. Returns True if this call recorded it. Raises JobNotFound.
        """
        values = {
            "job_id": job_id,
            "chunk_index": chunk_index,
            "rows": rows,
            "node": node,
            "path": path,
            "committed_at": _now(),
            "compute_seconds": compute_seconds,
        }
        try:
            with self._engine.begin() as conn:
                # rowcount of an INSERT is only kept when asked for (SQLAlchemy >= 2.0.28).
                insert = self._insert_chunk(conn.dialect, values)
                result = conn.execute(insert.execution_options(preserve_rowcount=True))
                return bool(result.rowcount)
        except sa.exc.IntegrityError as exc:
            # With the duplicate case absorbed above, this is the foreign key: no such job.
            self.get(job_id)
            raise RegistryError(f"cannot record chunk {chunk_index} of {job_id}") from exc

    def committed_chunks(self, job_id: str) -> set[int]:
        """Indices of the job's committed chunks (what a resumed run may skip)."""
        return {c.chunk_index for c in self.chunks(job_id)}

    def chunks(self, job_id: str) -> list[ChunkRecord]:
        """The job's committed chunks by index. Raises JobNotFound."""
        query = (
            sa.select(chunks_table)
            .where(chunks_table.c.job_id == job_id)
            .order_by(chunks_table.c.chunk_index)
        )
        with self._engine.connect() as conn:
            records = [ChunkRecord(**row._mapping) for row in conn.execute(query)]
            if not records:
                self._fetch(conn, job_id)
        return records

    # ---- helpers --------------------------------------------------------------------

    @staticmethod
    def _fetch(conn: Connection, job_id: str) -> JobRecord:
        row = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return JobRecord.from_row(row)

    @staticmethod
    def _update_live(
        conn: Connection, job_id: str, values: Mapping[str, Any], runner: str | None = None
    ) -> bool:
        """Apply ``values`` unless the job is terminal (or, with ``runner``, owned by another
        runner); False if nothing was updated."""
        query = jobs_table.update().where(
            jobs_table.c.id == job_id, jobs_table.c.status.not_in(_TERMINAL)
        )
        if runner is not None:
            query = query.where(jobs_table.c.runner == runner)
        result = conn.execute(query.values(**values))
        return bool(result.rowcount)

    @staticmethod
    def _insert_chunk(dialect: Dialect, values: Mapping[str, Any]) -> sa.Insert:
        if dialect.name == "postgresql":
            return postgresql.insert(chunks_table).values(**values).on_conflict_do_nothing()
        if dialect.name == "sqlite":
            return sqlite.insert(chunks_table).values(**values).on_conflict_do_nothing()
        raise NotImplementedError(f"unsupported registry database: {dialect.name}")
