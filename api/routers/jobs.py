"""/v1/jobs: submit, validate, list, inspect, cancel, resume, summary and results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from api import queries, results
from api.auth import Principal, Role
from api.deps import AppState, Caller, State, chunk_workers, job_store, require, visible_job
from api.errors import ApiError, not_found, quota_exceeded
from api.schemas import (
    ErrorResponse,
    JobCreate,
    JobPublic,
    JobsPublic,
    ResultsPage,
    ValidationReport,
)
from api.strict_json import StrictJSONRoute
from api.views import job_public
from edt_compute.library import list_models
from edt_compute.validation import SpecError
from jobs.registry import JobRecord
from jobs.spec import PreparedJob, prepare_job
from jobs.status import JOB_ID_PATTERN, JobStatus

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "missing or unknown token",
        403: "the token's role may not do this",
        404: "no such job (or another tenant's)",
        409: "the job's state does not allow this",
        413: "request body too large",
        422: "invalid request, with the path of each problem",
        429: "over a tenant quota (names the limit and the current use)",
    }.items()
}
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute, responses=_ERRORS)
JobId = Annotated[str, Path(pattern=f"^{JOB_ID_PATTERN.pattern}$", description="job id")]
# Bounded so that every value is a valid SQL integer on every backend.
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


def _prepare(body: JobCreate) -> PreparedJob:
    doc = body.model_dump(mode="json", exclude_unset=True)
    # A server must never read files named by a request: library names or inline models only.
    if isinstance(body.model, str) and body.model not in list_models():
        raise SpecError(
            "job",
            [
                f"model: '{body.model}' is not a library model ({', '.join(list_models())}); "
                "send the model inline"
            ],
        )
    return prepare_job(doc)


def _check_quotas(state: AppState, caller: Principal, job: PreparedJob) -> None:
    q = state.tokens.quotas(caller.tenant, state.settings)
    if job.total > q.max_scenarios_per_job:
        raise quota_exceeded(
            "max_scenarios_per_job",
            job.total,
            q.max_scenarios_per_job,
            f"quota max_scenarios_per_job of tenant {caller.tenant}: the job has {job.total:,} "
            f"scenarios, the limit is {q.max_scenarios_per_job:,}",
        )
    active = queries.active_jobs(state.registry, caller.tenant)
    if active >= q.max_active_jobs:
        raise quota_exceeded(
            "max_active_jobs",
            active,
            q.max_active_jobs,
            f"quota max_active_jobs of tenant {caller.tenant}: {active} jobs queued or running, "
            f"the limit is {q.max_active_jobs}",
        )
    now = datetime.now(UTC)
    used = queries.usage(state.registry, now - timedelta(days=1), now, caller.tenant)
    cpu = used.get(caller.tenant, (0, 0, 0.0))[2]
    if cpu >= q.cpu_seconds_per_day:
        raise quota_exceeded(
            "cpu_seconds_per_day",
            round(cpu, 3),
            q.cpu_seconds_per_day,
            f"quota cpu_seconds_per_day of tenant {caller.tenant}: {cpu:,.1f} CPU-seconds used "
            f"in the last 24 h, the limit is {q.cpu_seconds_per_day:,.1f}",
        )


@router.post("", status_code=202, operation_id="submit_job", response_model=JobPublic)
def submit_job(body: JobCreate, state: State, caller: Caller) -> JobPublic:
    """Validate and queue a job; the scheduler starts it. Answers the queued job."""
    require(caller, Role.SUBMITTER)
    job = _prepare(body)
    _check_quotas(state, caller, job)
    record = state.submit(
        state.registry, state.store, job, tenant=caller.tenant, workers=chunk_workers(state)
    )
    if state.scheduler is not None:
        state.scheduler.wake()
    return job_public(record)


@router.post("/validate", operation_id="validate_job", response_model=ValidationReport)
def validate_job(body: JobCreate, caller: Caller) -> ValidationReport:
    """Check a job completely (422 lists every problem with its path); nothing is stored."""
    job = _prepare(body)
    return ValidationReport(
        valid=True,
        name=job.spec.name,
        mode=job.spec.mode,
        model=job.model.name,
        total_scenarios=job.total,
        adaptive=job.stopping_rule is not None,
    )


@router.get("", operation_id="list_jobs", response_model=JobsPublic)
def list_jobs(
    state: State,
    caller: Caller,
    status: JobStatus | None = None,
    label: Annotated[
        list[str] | None, Query(description="key=value; repeat to require several")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=100, description="admins only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobsPublic:
    """Jobs of the caller's tenant (an admin: every tenant, or `tenant`), newest first."""
    wanted: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(422, "invalid", f"query.label: expected key=value, got {item!r}")
        wanted[key] = value
    scope = tenant if caller.role is Role.ADMIN else caller.tenant
    page = _filtered(state, scope, status, wanted, limit + 1, offset)
    more = len(page) > limit
    page = page[:limit]
    return JobsPublic(
        data=[job_public(r) for r in page],
        count=len(page),
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


def _filtered(
    state: AppState,
    tenant: str | None,
    status: JobStatus | None,
    labels: dict[str, str],
    limit: int,
    offset: int,
) -> list[JobRecord]:
    if not labels:
        return state.registry.list_jobs(tenant=tenant, status=status, limit=limit, offset=offset)
    # Labels live in a JSON column: filter here, scanning newest first in batches.
    matched: list[JobRecord] = []
    scanned, batch = 0, 500
    while len(matched) < offset + limit:
        rows = state.registry.list_jobs(tenant=tenant, status=status, limit=batch, offset=scanned)
        matched += [r for r in rows if all(r.labels.get(k) == v for k, v in labels.items())]
        scanned += len(rows)
        if len(rows) < batch:
            break
    return matched[offset : offset + limit]


@router.get("/{job_id}", operation_id="get_job", response_model=JobPublic)
def get_job(job_id: JobId, state: State, caller: Caller) -> JobPublic:
    """Status, progress, rate, ETA, counts by scenario status, error, storage, convergence."""
    record = visible_job(state, caller, job_id)
    return job_public(record, job_store(record, state))


@router.post(
    "/{job_id}/cancel", status_code=202, operation_id="cancel_job", response_model=JobPublic
)
def cancel_job(job_id: JobId, state: State, caller: Caller) -> JobPublic:
    """Stop dispatching; chunks in flight finish; committed parts stay."""
    visible_job(state, caller, job_id)
    require(caller, Role.SUBMITTER)
    return job_public(state.registry.request_cancel(job_id))


@router.post(
    "/{job_id}/resume", status_code=202, operation_id="resume_job", response_model=JobPublic
)
def resume_job(job_id: JobId, state: State, caller: Caller) -> JobPublic:
    """Take an interrupted job back to running; only chunks with no committed part are computed."""
    record = visible_job(state, caller, job_id)
    require(caller, Role.SUBMITTER)
    if record.status is JobStatus.QUEUED:
        raise ApiError(409, "conflict", f"job {job_id} is queued; the scheduler starts it")
    if record.status.is_terminal():
        raise ApiError(409, "conflict", f"job {job_id} is {record.status.value}; it cannot resume")
    try:
        resumed = state.resume(
            state.registry,
            job_id,
            address=state.settings.address,
            workers=state.settings.workers,
        )
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc).splitlines()[0]) from None
    return job_public(resumed)


@router.get("/{job_id}/summary", operation_id="get_job_summary", response_model=dict[str, Any])
def get_job_summary(job_id: JobId, state: State, caller: Caller) -> dict[str, Any]:
    """summary.json of a succeeded job: risk figures over all its scenarios."""
    record = visible_job(state, caller, job_id)
    try:
        summary: dict[str, Any] = job_store(record, state).read_json(job_id, "summary.json")
    except FileNotFoundError:
        raise ApiError(
            409, "not_ready", f"job {job_id} is {record.status.value}; no summary (yet)"
        ) from None
    return summary


@router.get(
    "/{job_id}/results",
    operation_id="get_job_results",
    response_model=ResultsPage,
    responses={
        200: {
            "content": {
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
            "description": "a page of rows (JSON), or the whole table (format=parquet|csv)",
        }
    },
)
def get_job_results(
    job_id: JobId,
    state: State,
    caller: Caller,
    format: Literal["json", "parquet", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
    columns: Annotated[
        list[str] | None, Query(description="columns to return (repeat, or comma-separated)")
    ] = None,
) -> Any:
    """The scenario table: committed rows so far, in scenario order."""
    record = visible_job(state, caller, job_id)
    store = job_store(record, state)
    parts = store.list_parts(job_id)
    if not parts:
        raise not_found(f"job {job_id} has no committed results yet")
    if format != "json":
        media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
        name = f"{job_id}-scenarios.{format}"
        return StreamingResponse(
            results.stream(store, job_id, parts, format),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    available = results.columns_of(store, job_id, parts)
    wanted = [c for item in columns or [] for c in item.split(",") if c] or None
    unknown = sorted(set(wanted or []) - set(available))
    if unknown:
        raise ApiError(422, "invalid", f"query.columns: unknown column(s) {unknown}")
    rows = results.read_page(store, job_id, parts, offset, limit, wanted)
    total = max(record.scenarios_done, offset + len(rows))
    end = offset + len(rows)
    return ResultsPage(
        job_id=job_id,
        columns=wanted or available,
        rows=rows,
        total=total,
        limit=limit,
        offset=offset,
        next_offset=end if rows and end < total else None,
    )
