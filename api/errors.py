"""One error shape for every response, and the one place that maps errors to HTTP codes.

{"error": {"code": "not_found", "message": "no job job-...", "details": [...]}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorBody, ErrorDetail, ErrorResponse
from edt_compute.validation import SpecError, _named_path
from jobs.registry import InvalidTransition, JobBusy, JobNotFound

log = logging.getLogger("edt.api")


class ApiError(Exception):
    """An expected failure of a request: its status, a stable code, a one-line message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[ErrorDetail] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.extra = extra


def error_responses(texts: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A router's documented error answers: each code with the one error body and its text."""
    return {code: {"model": ErrorResponse, "description": text} for code, text in texts.items()}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def quota_exceeded(limit: str, current: float, maximum: float, message: str) -> ApiError:
    return ApiError(429, "quota_exceeded", message, limit=limit, current=current, maximum=maximum)


# Exceptions raised below the API, by class: (status, code). Checked in order.
_MAPPED: list[tuple[type[Exception], int, str]] = [
    (JobNotFound, 404, "not_found"),
    (JobBusy, 409, "busy"),
    (InvalidTransition, 409, "conflict"),
]


def spec_problems(exc: SpecError) -> list[ErrorDetail]:
    """'path: message' lines of a SpecError as details."""
    out = []
    for line in exc.problems:
        path, sep, message = line.partition(": ")
        out.append(ErrorDetail(path=path, message=message) if sep else ErrorDetail(message=line))
    return out


def _respond(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None, **extra: Any
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorBody(code=code, message=message, details=details or [], **extra)
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    content = body.model_dump(mode="json", exclude_none=True)
    return JSONResponse(content, status_code=status, headers=headers)


def _location(error: Any, body: Any) -> str:
    """("body", "units", 3, "capacity") -> "units.reformer.capacity", as `edt validate` says
    it (named items by name, union tags dropped); ("query", "limit") -> "query.limit"."""
    loc = list(error.get("loc", ()))
    if error.get("type") == "json_invalid" or not loc:
        return "body"
    if loc[0] == "body":
        return _named_path(body, loc[1:]) or "body"
    return ".".join(map(str, loc))


def _message(error: Any) -> str:
    ctx = error.get("ctx")
    reason = ctx.get("error") if isinstance(ctx, dict) else None
    msg = str(error.get("msg", "invalid"))
    return f"{msg}: {reason}" if isinstance(reason, str) else msg


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc.status, exc.code, exc.message, exc.details, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail(path=_location(e, exc.body), message=_message(e)) for e in exc.errors()
        ]
        first = f"{details[0].path}: {details[0].message}" if details else "invalid request"
        return _respond(422, "invalid", first, details)

    @app.exception_handler(SpecError)
    async def _spec(_: Request, exc: SpecError) -> JSONResponse:
        details = spec_problems(exc)
        return _respond(422, "invalid", f"{len(details)} problem(s) in the job", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return _respond(exc.status_code, code, str(exc.detail))

    for cls, status, code in _MAPPED:

        async def _mapped(
            _: Request, exc: Exception, status: int = status, code: str = code
        ) -> JSONResponse:
            return _respond(status, code, str(exc).splitlines()[0] if str(exc) else code)

        app.add_exception_handler(cls, _mapped)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(500, "internal", f"internal error ({type(exc).__name__})")
