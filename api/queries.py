"""Aggregate reads over the registry that the API needs and `jobs.registry` does not offer
(usage per tenant, jobs by status, recent throughput). Read-only SQL on the registry's tables.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from jobs.registry import Registry
from jobs.registry_tables import chunks_table, jobs_table


def status_counts(registry: Registry) -> dict[str, int]:
    q = sa.select(jobs_table.c.status, sa.func.count()).group_by(jobs_table.c.status)
    with registry.engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(q)}


def scenarios_done_total(registry: Registry) -> int:
    q = sa.select(sa.func.coalesce(sa.func.sum(jobs_table.c.scenarios_done), 0))
    with registry.engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def rows_committed_since(registry: Registry, since: datetime) -> int:
    q = sa.select(sa.func.coalesce(sa.func.sum(chunks_table.c.rows), 0)).where(
        chunks_table.c.committed_at >= since
    )
    with registry.engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def active_jobs(registry: Registry, tenant: str) -> int:
    """Queued plus running jobs of a tenant (the max_active_jobs quota)."""
    q = sa.select(sa.func.count()).where(
        jobs_table.c.tenant == tenant, jobs_table.c.status.in_(["queued", "running"])
    )
    with registry.engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def usage(
    registry: Registry, since: datetime, until: datetime, tenant: str | None = None
) -> dict[str, tuple[int, int, float]]:
    """Per tenant: (jobs created, scenario rows committed, CPU-seconds committed) in the window."""
    j, c = jobs_table.c, chunks_table.c
    created = sa.select(j.tenant, sa.func.count()).where(
        j.created_at >= since, j.created_at < until
    )
    work = (
        sa.select(
            j.tenant,
            sa.func.coalesce(sa.func.sum(c.rows), 0),
            sa.func.coalesce(sa.func.sum(c.compute_seconds), 0.0),
        )
        .select_from(chunks_table.join(jobs_table, c.job_id == j.id))
        .where(c.committed_at >= since, c.committed_at < until)
    )
    if tenant is not None:
        created, work = created.where(j.tenant == tenant), work.where(j.tenant == tenant)
    out: dict[str, tuple[int, int, float]] = {}
    with registry.engine.connect() as conn:
        for t, n in conn.execute(created.group_by(j.tenant)):
            out[str(t)] = (int(n), 0, 0.0)
        for t, rows, secs in conn.execute(work.group_by(j.tenant)):
            jobs_n = out.get(str(t), (0, 0, 0.0))[0]
            out[str(t)] = (jobs_n, int(rows), float(secs))
    return out
