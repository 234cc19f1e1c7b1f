"""/v1/usage: per tenant, jobs, scenarios and CPU-seconds over a time window (like sacct)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api import queries
from api.auth import Role
from api.deps import Caller, State
from api.errors import ApiError
from api.schemas import ErrorResponse, TenantUsage, UsagePublic

router = APIRouter(
    prefix="/v1/usage",
    tags=["usage"],
    responses={
        401: {"model": ErrorResponse, "description": "missing or unknown token"},
        422: {"model": ErrorResponse, "description": "invalid window"},
    },
)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@router.get("", operation_id="get_usage", response_model=UsagePublic)
def get_usage(
    state: State,
    caller: Caller,
    since: Annotated[datetime | None, Query(description="default: 24 h before `until`")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    tenant: Annotated[str | None, Query(max_length=100, description="admins only")] = None,
) -> UsagePublic:
    """Jobs created, scenario rows and CPU-seconds committed in [since, until), per tenant."""
    try:
        end = _aware(until) if until else datetime.now(UTC)
        start = _aware(since) if since else end - timedelta(days=1)
    except (OverflowError, ValueError) as exc:
        raise ApiError(422, "invalid", f"query: bad time window: {exc}") from None
    if start >= end:
        raise ApiError(422, "invalid", "query.since: must be before until")
    scope = tenant if caller.role is Role.ADMIN else caller.tenant
    rows = queries.usage(state.registry, start, end, scope)
    if scope is not None:
        rows.setdefault(scope, (0, 0, 0.0))
    return UsagePublic(
        since=start,
        until=end,
        data=[
            TenantUsage(tenant=t, jobs=j, scenarios=s, cpu_seconds=round(c, 6))
            for t, (j, s, c) in sorted(rows.items())
        ],
    )
