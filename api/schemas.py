"""The /v1 view models: what the API accepts and answers, never the registry's records.

Changing a field here changes the committed contract (api/openapi.json); removing one, or
making a request field required, is a breaking change and belongs in /v2.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.spec import JobSpec
from jobs.status import JobStatus


class _Out(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)


class ErrorDetail(_Out):
    path: str | None = Field(default=None, description="dotted path of the offending field")
    message: str


class ErrorBody(_Out):
    code: str = Field(
        description="stable, machine-readable: not_found, invalid, quota_exceeded, ..."
    )
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    limit: str | None = Field(default=None, description="quota_exceeded: the limit's name")
    current: float | None = Field(default=None, description="quota_exceeded: the current use")
    maximum: float | None = Field(default=None, description="quota_exceeded: the limit")


class ErrorResponse(_Out):
    error: ErrorBody


class JobCreate(JobSpec):
    """A job as submitted: the same document as a job file (`edt validate` accepts it too)."""


class ConvergencePoint(_Out):
    """An adaptive job's last checkpoint for one target."""

    n: int
    metric: str
    statistic: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    half_width: float | None = None
    goal: float | None = None
    met: bool


class JobPublic(_Out):
    id: str
    name: str
    status: JobStatus
    tenant: str
    priority: int
    labels: dict[str, str]
    mode: str | None = None
    total_scenarios: int
    total_chunks: int
    scenarios_done: int
    scenarios_failed: int
    progress: float = Field(ge=0, le=1, description="done / total")
    rate: float | None = Field(default=None, description="scenarios per second")
    eta_seconds: float | None = None
    status_counts: dict[str, int] | None = Field(
        default=None, description="scenarios by status (ok, infeasible, time_limit, error)"
    )
    convergence: list[ConvergencePoint] | None = None
    error: str | None = None
    message: str | None = Field(default=None, description="what a running job waits for now")
    note: str | None = Field(
        default=None, description="why the status differs from plain progress, and what to do"
    )
    cancel_requested: bool
    interruptions: int
    storage: str | None = Field(default=None, description="URL of the job's results folder")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobsPublic(_Out):
    data: list[JobPublic]
    count: int = Field(description="jobs in this page")
    limit: int
    offset: int
    next_offset: int | None = Field(default=None, description="offset of the next page, if any")


class ValidationReport(_Out):
    valid: bool
    name: str
    mode: str
    model: str
    total_scenarios: int
    adaptive: bool


class ResultsPage(_Out):
    job_id: str
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="one object per scenario; NaN as null")
    total: int = Field(description="scenario rows committed so far")
    limit: int
    offset: int
    next_offset: int | None = None


class ModelInfo(_Out):
    name: str
    description: str
    horizon: int
    period: str
    currency: str


class ModelsPublic(_Out):
    data: list[ModelInfo]


class ParameterInfo(_Out):
    path: str
    base_value: float | None
    minimum: float | None = Field(default=None, description="domain lower bound")
    maximum: float | None = Field(default=None, description="domain upper bound")
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False


class ModelPublic(ModelInfo):
    projects: list[str]
    parameters: list[ParameterInfo]


class TenantUsage(_Out):
    tenant: str
    jobs: int = Field(description="jobs created in the window")
    scenarios: int = Field(description="scenario rows committed in the window")
    cpu_seconds: float = Field(description="sum of chunk compute times committed in the window")


class UsagePublic(_Out):
    since: datetime
    until: datetime
    data: list[TenantUsage]


class Health(_Out):
    status: str


class Check(_Out):
    ok: bool
    detail: str


class Readiness(_Out):
    status: str = Field(description="ready | not_ready")
    checks: dict[str, Check] = Field(description="registry, storage, ray")
