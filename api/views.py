"""Registry records -> /v1 view models (the only place that knows both)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.schemas import ConvergencePoint, JobPublic
from cluster.liveness import shown_status
from jobs.registry import JobRecord
from jobs.status import JobStatus
from jobs.storage import ResultStore


def _rate(record: JobRecord, now: datetime) -> float | None:
    if record.started_at is None or not record.scenarios_done:
        return None
    end = record.finished_at or now
    seconds = (end - record.started_at).total_seconds()
    return record.scenarios_done / seconds if seconds > 0 else None


def job_public(
    record: JobRecord, store: ResultStore | None = None, now: datetime | None = None
) -> JobPublic:
    """The job as the API shows it; with `store`, also what only storage knows (status counts
    of a finished job, an adaptive job's last checkpoint)."""
    now = now or datetime.now(UTC)
    total = max(record.total_scenarios, 0)
    done = min(record.scenarios_done, total) if total else record.scenarios_done
    rate = _rate(record, now)
    # A running job whose supervisor is gone is shown interrupted (as the CLI shows it) until
    # the reconciler takes it back.
    shown, note = shown_status(record, now)
    eta = None
    if shown is JobStatus.RUNNING and rate:
        eta = max(total - done, 0) / rate
    counts: dict[str, int] | None = None
    convergence: list[ConvergencePoint] | None = None
    if store is not None:
        counts, convergence = _from_storage(record, store)
    if counts is None:
        counts = {"ok": max(done - record.scenarios_failed, 0), "failed": record.scenarios_failed}
    results = f"{record.storage.rstrip('/')}/jobs/{record.id}" if record.storage else None
    return JobPublic(
        id=record.id,
        name=record.name,
        status=shown,
        note=note,
        tenant=record.tenant,
        priority=record.priority,
        labels=dict(record.labels),
        mode=record.spec.get("mode"),
        total_scenarios=record.total_scenarios,
        total_chunks=record.total_chunks,
        scenarios_done=record.scenarios_done,
        scenarios_failed=record.scenarios_failed,
        progress=min(done / total, 1.0) if total else 0.0,
        rate=rate,
        eta_seconds=eta,
        status_counts=counts,
        convergence=convergence,
        error=record.error,
        message=record.message,
        cancel_requested=record.cancel_requested,
        interruptions=record.interruptions or 0,
        storage=results,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
    )


def _from_storage(
    record: JobRecord, store: ResultStore
) -> tuple[dict[str, int] | None, list[ConvergencePoint] | None]:
    counts = convergence = None
    try:
        if record.status is JobStatus.SUCCEEDED:
            summary = store.read_json(record.id, "summary.json")
            counts = {str(k): int(v) for k, v in summary.get("status_counts", {}).items()}
        if record.spec.get("scenarios", {}).get("until"):
            report: Any = store.read_json(record.id, "convergence.json")
            convergence = _last_checkpoint(report.get("history", []))
    except (FileNotFoundError, OSError, ValueError, AttributeError):
        pass  # not written yet (or storage briefly away): the registry's figures stand
    return counts, convergence


def _last_checkpoint(history: list[dict[str, Any]]) -> list[ConvergencePoint]:
    if not history:
        return []
    n = max(int(r["n"]) for r in history)
    fields = ConvergencePoint.model_fields
    return [
        ConvergencePoint(**{k: v for k, v in r.items() if k in fields})
        for r in history
        if int(r["n"]) == n
    ]
