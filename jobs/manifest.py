"""manifest.json: what a finished job is made of and how it was computed (written last)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edt_compute import __version__
from jobs.registry import ChunkRecord, JobRecord
from jobs.spec import PreparedJob


@dataclass
class RunStats:
    """What one supervisor run measured: per-chunk times, chunks it dispatched, its pool."""

    timings: dict[int, dict[str, float]] = field(default_factory=dict)
    dispatched: list[int] = field(default_factory=list)
    workers: int = 0
    wall_seconds: float = 0.0


def build_manifest(
    record: JobRecord,
    job: PreparedJob,
    chunks: list[ChunkRecord],
    *,
    total: int,
    started: datetime,
    run: RunStats,
    software: dict[str, str],
    convergence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a job whose final dataset holds scenario ids 0..total-1."""
    size = int(record.spec["chunk_size"])
    manifest: dict[str, Any] = {
        "job_id": record.id,
        "name": job.spec.name,
        "spec_hash": record.spec_hash,
        "software": {"edt_compute": __version__, **software},
        "total_scenarios": total,
        "chunk_size": size,
        "chunks": [
            {
                "index": c.chunk_index,
                "rows": min(c.rows, total - c.chunk_index * size),
                "node": c.node,
                "path": c.path,
                "committed_at": c.committed_at.isoformat(),
                **run.timings.get(c.chunk_index, {}),
            }
            for c in chunks
        ],
        "recomputed_chunks_this_run": len(set(run.dispatched)),
        "workers": run.workers,
        "dispatch_wall_seconds": run.wall_seconds,
        "created_at": record.created_at.isoformat(),
        "started_at": (record.started_at or started).isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    if convergence is not None:
        manifest["adaptive"] = {
            "max_samples": job.total,
            "stopped_at": total,
            "stopped_by": convergence["stopped_by"],
            "extra_scenarios_discarded": convergence["extra_scenarios_discarded"],
        }
    return manifest
