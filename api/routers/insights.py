"""/v1/jobs/{id}/figures, /discover and /report: what the dashboard draws, from the Parquet
parts (only the needed columns, part by part), summary.json and convergence.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from api.deps import Caller, State, job_store, visible_job
from api.errors import ApiError, not_found
from api.report import job_figures, page_data, render_report
from api.schemas import ErrorResponse
from edt_compute.finance import TABLE_METRICS
from jobs import insights
from jobs.status import JOB_ID_PATTERN

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "missing or unknown token",
        404: "no such job (or another tenant's), or no committed results yet",
        422: "invalid request, with the path of each problem",
    }.items()
}
# An HTML route documents its errors by hand: FastAPI would give them the route's media type.
_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": v["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for code, v in _ERRORS.items()
}
router = APIRouter(prefix="/v1/jobs", tags=["insights"], responses=_ERRORS)
JobId = Annotated[str, Path(pattern=f"^{JOB_ID_PATTERN.pattern}$", description="job id")]
Metric = Literal[TABLE_METRICS]  # type: ignore[valid-type]
Threshold = Annotated[float | None, Query(allow_inf_nan=False, ge=-1e300, le=1e300)]


@router.get("/{job_id}/figures", operation_id="get_job_figures", response_model=dict[str, Any])
def get_job_figures(job_id: JobId, state: State, caller: Caller) -> dict[str, Any]:
    """NPV histogram and S-curve, build shares and periods, tornado, convergence."""
    record = visible_job(state, caller, job_id)
    try:
        return job_figures(record, job_store(record, state))
    except FileNotFoundError as exc:
        raise not_found(str(exc)) from None


@router.get("/{job_id}/discover", operation_id="discover_scenarios", response_model=dict[str, Any])
def discover_scenarios(
    job_id: JobId,
    state: State,
    caller: Caller,
    metric: Metric = "npv",
    below: Threshold = None,
    above: Threshold = None,
    max_rows: Annotated[int, Query(ge=100, le=1_000_000)] = insights.DISCOVERY_MAX_ROWS,
) -> dict[str, Any]:
    """The PRIM box of input ranges where `metric` is below (default: below 0) or above a
    threshold, with its coverage and density; above `max_rows` every k-th scenario is used."""
    if below is not None and above is not None:
        raise ApiError(422, "invalid", "query.above: give either below or above, not both")
    record = visible_job(state, caller, job_id)
    threshold = above if above is not None else (below if below is not None else 0.0)
    try:
        return insights.discover(
            job_store(record, state),
            job_id,
            metric=str(metric),
            threshold=threshold,
            below=above is None,
            max_rows=max_rows,
        )
    except FileNotFoundError as exc:
        raise not_found(str(exc)) from None
    except KeyError as exc:
        message = str(exc).strip("'\"")
        raise ApiError(422, "invalid", f"query.metric: {message}") from None


@router.get(
    "/{job_id}/report",
    operation_id="get_job_report",
    response_class=HTMLResponse,
    responses={
        **_JSON_ERRORS,
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
    },
)
def get_job_report(job_id: JobId, state: State, caller: Caller) -> HTMLResponse:
    """The job page as one self-contained HTML file (plotly.js and data inlined)."""
    record = visible_job(state, caller, job_id)
    store = job_store(record, state)
    if not store.list_parts(job_id):
        raise not_found(f"job {job_id} has no committed results yet")
    name = f"{job_id}-report.html"
    return HTMLResponse(
        render_report(page_data(record, store)),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
