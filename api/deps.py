"""What a request handler needs: the app's state, and who is asking (FastAPI dependencies)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import LOCAL_PRINCIPAL, Principal, Role, TokenBook
from api.errors import ApiError, not_found
from api.settings import Settings
from cluster.scheduler import Scheduler
from jobs.registry import JobNotFound, JobRecord, Registry
from jobs.status import JOB_ID_PATTERN, check_job_id
from jobs.storage import ResultStore

# submit_job(registry, store, job, *, chunk_size, tenant, workers) -> JobRecord
SubmitFn = Callable[..., JobRecord]
# resume_job(registry, job_id, *, address, workers) -> JobRecord
ResumeFn = Callable[..., JobRecord]


@dataclass
class AppState:
    settings: Settings
    registry: Registry
    store: ResultStore  # where new jobs write; a job's own results are where its row says
    tokens: TokenBook
    submit: SubmitFn
    resume: ResumeFn
    scheduler: Scheduler | None = None
    metrics: Any = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.edt
    return state


State = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False, description="a token from the server's tokens file")


def principal(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if not state.tokens.enabled:
        return LOCAL_PRINCIPAL
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    found = state.tokens.authenticate(credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown token")
    return found


Caller = Annotated[Principal, Depends(principal)]
# A job id in a path: refused (422) before any lookup unless it is a safe path segment.
JobId = Annotated[str, Path(pattern=f"^{JOB_ID_PATTERN.pattern}$", description="job id")]


def require(caller: Principal, role: Role) -> None:
    if not caller.role.at_least(role):
        raise ApiError(
            403, "forbidden", f"role {caller.role.value} may not do this; needs {role.value}"
        )


def visible_job(state: AppState, caller: Principal, job_id: str) -> JobRecord:
    """The job if it exists and the caller's tenant may see it; otherwise 404 (never 403,
    so that ids of other tenants' jobs cannot be probed)."""
    try:
        check_job_id(job_id)
        record = state.registry.get(job_id)
    except (ValueError, JobNotFound):
        raise not_found(f"no job {job_id}") from None
    if not caller.sees_tenant(record.tenant):
        raise not_found(f"no job {job_id}")
    return record


def chunk_workers(state: AppState) -> int:
    """The worker count new jobs' chunks are sized for; a submit never starts Ray itself."""
    if state.settings.workers:
        return state.settings.workers
    import ray

    if ray.is_initialized():
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return os.cpu_count() or 1


def job_store(record: JobRecord, state: AppState) -> ResultStore:
    """The job's own results root (recorded at submit), whatever this server's default."""
    return ResultStore(record.storage) if record.storage else state.store
