"""Job identity and lifecycle states (in the style of Ray's job module)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum

from solvers.status import SolveStatus

# Ids end up in object-store paths and URLs: keep them to a safe, short alphabet.
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> succeeded | failed | cancelled.

    `interrupted` is the resumable pause: an infrastructure fault outlasted its retries, or
    the job's supervisor (or the whole cluster) was lost. `edt resume` or the API's
    reconciler takes it back to `running`. `failed` is kept for errors a rerun cannot fix.

    A StrEnum (a str and an Enum) so values compare equal to, and format as, the plain
    strings stored in the registry and sent over HTTP.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    def is_terminal(self) -> bool:
        """True once the job can never change state again."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)


def new_job_id(now: datetime | None = None) -> str:
    """A short id that sorts by creation time: ``job-YYYYmmddHHMMSS-<6 hex>``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"job-{stamp}-{secrets.token_hex(3)}"


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` unchanged, or raise ValueError if it is unsafe as a path segment."""
    if not JOB_ID_PATTERN.fullmatch(job_id) or ".." in job_id:
        raise ValueError(f"invalid job id {job_id!r}: use 1-64 of [A-Za-z0-9._-]")
    return job_id


class ScenarioStatus(StrEnum):
    """A scenario row's `status` in the scenario table: ok | infeasible | time_limit | error.

    One definition of what each means downstream: `time_limit` (a MILP stopped by its time
    limit with a feasible plan) carries metrics, so the summary counts it and no count calls
    it failed; `infeasible` and `error` carry none and are the failed scenarios.
    """

    OK = "ok"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    ERROR = "error"

    @property
    def has_metrics(self) -> bool:
        return self in WITH_METRICS

    @classmethod
    def of_solve(cls, solve: SolveStatus) -> ScenarioStatus:
        """The row status of a scenario planned by the MILP: an unbounded plan (e.g. buying
        cheap and selling dear without limits) is a model error."""
        return _OF_SOLVE.get(solve, cls.ERROR)


WITH_METRICS: tuple[ScenarioStatus, ...] = (ScenarioStatus.OK, ScenarioStatus.TIME_LIMIT)
FAILED: tuple[ScenarioStatus, ...] = (ScenarioStatus.INFEASIBLE, ScenarioStatus.ERROR)
_OF_SOLVE = {
    SolveStatus.OPTIMAL: ScenarioStatus.OK,
    SolveStatus.TIME_LIMIT: ScenarioStatus.TIME_LIMIT,
    SolveStatus.INFEASIBLE: ScenarioStatus.INFEASIBLE,
}
