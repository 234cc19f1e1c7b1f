"""The FastAPI app: /v1 routers, one error shape, body limit, metrics, and (by default) the
scheduler and reconciler running in the server's process."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import errors
from api.auth import TokenBook, load_tokens
from api.body_limit import BodyLimitMiddleware
from api.deps import AppState, ResumeFn, SubmitFn
from api.metrics import LatencyMiddleware, Metrics
from api.routers import health, insights, jobs, models, usage, web
from api.settings import Settings
from cluster import launch
from cluster.scheduler import Launcher, Scheduler, ray_launcher
from jobs.registry import Registry
from jobs.storage import ResultStore

log = logging.getLogger("edt.api")
API_VERSION = "1.0.0"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(settings: Settings) -> str | None:
    """Why the server must not start on this address, or None."""
    if not settings.tokens_file and not is_loopback(settings.host):
        return (
            f"refusing to serve on {settings.host} without authentication: "
            "set EDT_TOKENS_FILE (or --tokens-file), or bind 127.0.0.1"
        )
    return None


def create_app(
    settings: Settings | None = None,
    *,
    launcher: Launcher | None = None,
    submit: SubmitFn | None = None,
    resume: ResumeFn | None = None,
    tokens: TokenBook | None = None,
) -> FastAPI:
    """The app for `settings`; `launcher`/`submit`/`resume` replace Ray in tests."""
    settings = settings or Settings()
    registry = Registry(settings.registry)
    state = AppState(
        settings=settings,
        registry=registry,
        store=ResultStore(settings.storage),
        tokens=tokens if tokens is not None else load_tokens(settings.tokens_file),
        submit=submit or launch.submit_job,
        resume=resume or (launcher.resume_job if launcher is not None else launch.resume_job),
    )
    state.metrics = Metrics(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.scheduler:
            if launcher is None:
                from cluster.runtime import connect

                connect(settings.address, settings.workers)
            state.scheduler = Scheduler(
                registry,
                launcher or ray_launcher(),
                max_running=settings.max_running_jobs,
                address=settings.address,
                workers=settings.workers,
                resume_budget=settings.resume_budget,
                interval=settings.scheduler_interval,
            )
            state.scheduler.start()
            log.info("scheduler started (at most %d running jobs)", settings.max_running_jobs)
        try:
            yield
        finally:
            if state.scheduler is not None:
                state.scheduler.stop()

    app = FastAPI(
        title="EDT Compute",
        version=API_VERSION,
        summary="Scenario and Monte Carlo jobs of an Enterprise Digital Twin, on Ray",
        lifespan=lifespan,
    )
    app.state.edt = state
    errors.install(app)
    for r in (jobs.router, insights.router, models.router, usage.router, health.router, web.router):
        app.include_router(r)

    @app.get("/metrics", include_in_schema=False)
    def metrics(_: Request) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=state.metrics)
    return app
