"""A small typed client of the /v1 API (httpx), used by the CLI and usable from notebooks.

from api.client import Client
with Client("http://edt.example:8000", token="...") as c:
    job = c.submit(yaml.safe_load(open("job.yaml")))
    job = c.wait(job.id)
    df = c.results_page(job.id, limit=100).rows
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from api.schemas import (
    JobPublic,
    JobsPublic,
    ModelPublic,
    ModelsPublic,
    ResultsPage,
    UsagePublic,
    ValidationReport,
)
from jobs.status import JobStatus


class ApiError(Exception):
    """An error answer of the server, in its one shape: status, code and message."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


class Client:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        return response

    # ---- jobs -------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> JobPublic:
        """Queue a job (the same document as a job file); returns it with its id."""
        return JobPublic.model_validate(self._request("POST", "/v1/jobs", json=spec).json())

    def validate(self, spec: dict[str, Any]) -> ValidationReport:
        r = self._request("POST", "/v1/jobs/validate", json=spec)
        return ValidationReport.model_validate(r.json())

    def job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._request("GET", f"/v1/jobs/{job_id}").json())

    def jobs(
        self,
        status: JobStatus | str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobsPublic:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = str(status)
        if labels:
            params["label"] = [f"{k}={v}" for k, v in labels.items()]
        return JobsPublic.model_validate(self._request("GET", "/v1/jobs", params=params).json())

    def cancel(self, job_id: str) -> JobPublic:
        r = self._request("POST", f"/v1/jobs/{job_id}/cancel")
        return JobPublic.model_validate(r.json())

    def resume(self, job_id: str) -> JobPublic:
        r = self._request("POST", f"/v1/jobs/{job_id}/resume")
        return JobPublic.model_validate(r.json())

    def summary(self, job_id: str) -> dict[str, Any]:
        summary: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}/summary").json()
        return summary

    def results_page(
        self, job_id: str, limit: int = 1000, offset: int = 0, columns: list[str] | None = None
    ) -> ResultsPage:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if columns:
            params["columns"] = columns
        r = self._request("GET", f"/v1/jobs/{job_id}/results", params=params)
        return ResultsPage.model_validate(r.json())

    def rows(
        self, job_id: str, page: int = 5000, columns: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every committed row, page by page."""
        offset: int | None = 0
        while offset is not None:
            p = self.results_page(job_id, limit=page, offset=offset, columns=columns)
            yield from p.rows
            offset = p.next_offset

    def download(
        self, job_id: str, path: str | Path, fmt: Literal["parquet", "csv"] | None = None
    ) -> Path:
        """Stream the whole scenario table to a file (format from its extension by default)."""
        out = Path(path)
        fmt = fmt or ("csv" if out.suffix == ".csv" else "parquet")
        tmp = out.with_name(f".{out.name}.part")
        with self._http.stream("GET", f"/v1/jobs/{job_id}/results", params={"format": fmt}) as r:
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            with tmp.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
        tmp.replace(out)
        return out

    def wait(
        self,
        job_id: str,
        poll: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[JobPublic], None] | None = None,
    ) -> JobPublic:
        """Poll until the job is terminal (or `timeout` seconds pass: TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status.is_terminal():
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status.value} after {timeout} s")
            time.sleep(poll)  # polling interval

    def figures(self, job_id: str) -> dict[str, Any]:
        """What the job page draws: NPV histogram and S-curve, build shares, tornado,
        convergence."""
        out: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}/figures").json()
        return out

    def discover(
        self,
        job_id: str,
        metric: str = "npv",
        below: float | None = None,
        above: float | None = None,
        max_rows: int | None = None,
    ) -> dict[str, Any]:
        """The PRIM box of input ranges where `metric` is below (default: below 0) or above a
        threshold, with its coverage and density."""
        params: dict[str, Any] = {"metric": metric}
        for key, value in {"below": below, "above": above, "max_rows": max_rows}.items():
            if value is not None:
                params[key] = value
        out: dict[str, Any] = self._request(
            "GET", f"/v1/jobs/{job_id}/discover", params=params
        ).json()
        return out

    def report(self, job_id: str, path: str | Path) -> Path:
        """Save the job page as one self-contained HTML file."""
        out = Path(path)
        out.write_text(self._request("GET", f"/v1/jobs/{job_id}/report").text, encoding="utf-8")
        return out

    # ---- models, usage ----------------------------------------------------------------

    def models(self) -> ModelsPublic:
        return ModelsPublic.model_validate(self._request("GET", "/v1/models").json())

    def model(self, name: str) -> ModelPublic:
        return ModelPublic.model_validate(self._request("GET", f"/v1/models/{name}").json())

    def usage(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant: str | None = None,
    ) -> UsagePublic:
        params = {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in {"since": since, "until": until, "tenant": tenant}.items()
            if v is not None
        }
        return UsagePublic.model_validate(self._request("GET", "/v1/usage", params=params).json())


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        err = body["error"]
        return ApiError(response.status_code, str(err["code"]), str(err["message"]), body)
    except (ValueError, KeyError, TypeError):
        text = response.text[:200]
        return ApiError(response.status_code, "http_error", text or response.reason_phrase, {})
