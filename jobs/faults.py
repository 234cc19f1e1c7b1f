"""Infrastructure faults: what they are, and how long a job waits for them to pass.

A storage or registry error says nothing about the job's scenarios: the same chunk succeeds
once S3 or PostgreSQL answers again. So these errors are retried with exponential backoff for
a configurable time (`EDT_FAULT_TIMEOUT`), and a job that outlasts it is `interrupted`
(resumable), never `failed`. Scenario errors (bad numbers, infeasible plans) are results, and
bugs in a chunk fail the job: neither is handled here.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from jobs.config import ConfigError

T = TypeVar("T")

DEFAULT_FAULT_TIMEOUT = 180.0


class InfrastructureError(Exception):
    """Storage or registry did not answer; a rerun of the same work can succeed."""


class StorageUnavailable(InfrastructureError):  # noqa: N818 (named for what it says)
    """The results storage refused or dropped a read or write."""


class RegistryUnavailable(InfrastructureError):  # noqa: N818
    """The job registry's database refused or dropped a statement."""


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, short enough for a status field: the original error of a
    Ray task (not Ray's wrapper with its remote traceback), without terminal colours."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = " ".join(_ANSI.sub("", f"{type(exc).__name__}: {exc}").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_STORAGE_CLIENTS = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3")


def storage_fault(exc: BaseException) -> bool:
    """An error of the storage or the way to it (not of the data written): OS errors
    (refused, reset, permission, disk full) and the S3 client stack's own errors."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    return any(type(e).__module__.startswith(_STORAGE_CLIENTS) for e in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def registry_fault(exc: Exception) -> bool:
    """A database error of the registry's connection (not a job that is not there)."""
    return isinstance(exc, sa.exc.DBAPIError | sa.exc.DisconnectionError)


def fault_timeout() -> float:
    """Seconds an infrastructure fault may last before a job is interrupted."""
    raw = os.environ.get("EDT_FAULT_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_FAULT_TIMEOUT
    except ValueError:
        raise ConfigError(f"EDT_FAULT_TIMEOUT: not a number of seconds: {raw!r}") from None


@dataclass(frozen=True)
class Backoff:
    """Delays 0.5, 1, 2, 4, ... s capped at `cap`, with +-20% jitter so that many workers
    retrying one server do not hit it in lockstep."""

    first: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        base = min(self.cap, self.first * 2.0 ** max(0, attempt))
        return base * random.uniform(0.8, 1.2)


class Outage:
    """How long a kind of fault has lasted: started by the first failure, ended by the first
    success; `expired` once it has lasted longer than the budget."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.since: float | None = None
        self.failures = 0
        self.last_error = ""

    def failed(self, error: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.failures += 1
        self.last_error = error

    def recovered(self) -> bool:
        """Mark the outage over; True if there was one."""
        was = self.since is not None
        self.since, self.failures, self.last_error = None, 0, ""
        return was

    @property
    def elapsed(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    @property
    def expired(self) -> bool:
        return self.since is not None and self.elapsed > self.budget

    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed)


def retry(
    call: Callable[[], T],
    *,
    what: str,
    budget: float,
    wrap: type[InfrastructureError],
    on_wait: Callable[[str], None] | None = None,
    transient: Callable[[Exception], bool] = lambda exc: True,
    backoff: Backoff = Backoff(),
) -> T:
    """`call()` until it succeeds or its failures have lasted `budget` seconds; then raise
    `wrap` naming `what` and the last error. Errors that are not `transient` (e.g. a job
    not found) are raised at once. `on_wait` hears each wait (one line)."""
    outage = Outage(budget)
    while True:
        try:
            return call()
        except InfrastructureError:
            raise
        except Exception as exc:
            if not transient(exc):
                raise
            outage.failed(one_line(exc))
            if outage.expired:
                raise wrap(
                    f"{what} unreachable for {outage.elapsed:.0f} s: {outage.last_error}"
                ) from exc
            pause = min(backoff.delay(outage.failures - 1), outage.remaining() + 0.01)
            if on_wait is not None:
                on_wait(
                    f"waiting for {what} ({outage.last_error}); retrying for "
                    f"{outage.remaining():.0f} s more"
                )
            time.sleep(pause)  # backoff between attempts, not a wait for a condition
