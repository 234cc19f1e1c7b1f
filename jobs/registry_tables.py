"""The registry's tables and the records read from them (SQLAlchemy Core).

Kept apart from `jobs.registry`, which holds the operations, so that the schema reads in one
place; `add_new_columns` is the small in-place upgrade for added nullable columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, Engine

from jobs.status import JobStatus


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the registry only stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

jobs_table = sa.Table(
    "edt_jobs",
    metadata,
    # Insertion order: breaks ties between jobs created within the clock's resolution.
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("labels", _JSON, nullable=False),
    sa.Column("spec", _JSON, nullable=False),
    sa.Column("spec_hash", sa.String(128), nullable=False),
    sa.Column("total_scenarios", sa.BigInteger, nullable=False),
    sa.Column("total_chunks", sa.Integer, nullable=False),
    sa.Column("scenarios_done", sa.BigInteger, nullable=False),
    sa.Column("scenarios_failed", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    # Who runs the job now (host:pid:token) and when it last said so: a second supervisor
    # must not run a job whose first one is alive.
    sa.Column("runner", sa.String(255), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    # Where the job's results live (a URL without credentials): every later command finds
    # them here, whatever the settings of the process that asks.
    sa.Column("storage", sa.Text, nullable=True),
    # What a running job is waiting for right now (e.g. storage unreachable, retrying).
    sa.Column("message", sa.Text, nullable=True),
    # How often the job was interrupted: the reconciler resumes within a budget.
    sa.Column("interruptions", sa.Integer, nullable=True),
    sa.Index("ix_edt_jobs_claim", "status", "priority", "seq"),
    sa.Index("ix_edt_jobs_tenant", "tenant", "status"),
)

chunks_table = sa.Table(
    "edt_job_chunks",
    metadata,
    sa.Column(
        "job_id", sa.String(64), sa.ForeignKey("edt_jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("chunk_index", sa.Integer, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("committed_at", UTCDateTime, nullable=False),
    # Seconds the worker spent computing the chunk: the job's CPU-seconds (usage, quotas).
    sa.Column("compute_seconds", sa.Float, nullable=True),
    # The constraint that makes a chunk committed twice one row.
    sa.PrimaryKeyConstraint("job_id", "chunk_index", name="pk_edt_job_chunks"),
)


@dataclass(frozen=True)
class JobRecord:
    """A job as stored in the registry; times are timezone-aware UTC."""

    id: str
    name: str
    status: JobStatus
    tenant: str
    priority: int
    labels: dict[str, str]
    spec: dict[str, Any]
    spec_hash: str
    total_scenarios: int
    total_chunks: int
    scenarios_done: int
    scenarios_failed: int
    error: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    runner: str | None
    heartbeat_at: datetime | None
    storage: str | None = None
    message: str | None = None
    interruptions: int | None = None

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> JobRecord:
        m = row._mapping
        return cls(
            **{name: m[name] for name in _JOB_FIELDS},
            status=JobStatus(m["status"]),
            cancel_requested=bool(m["cancel_requested"]),
        )


_JOB_FIELDS = [
    c.name for c in jobs_table.columns if c.name not in {"seq", "status", "cancel_requested"}
]


@dataclass(frozen=True)
class ChunkRecord:
    """A committed chunk: its part file is complete and will not change."""

    job_id: str
    chunk_index: int
    rows: int
    node: str
    path: str
    committed_at: datetime
    compute_seconds: float | None = None


def add_new_columns(engine: Engine) -> None:
    """Add nullable columns that newer versions introduced to an existing registry.

    Enough while every change is an added nullable column; a real migration tool (Alembic)
    takes over at the first change that is not.
    """
    for table in metadata.sorted_tables:
        existing = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(
                        sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                    )
