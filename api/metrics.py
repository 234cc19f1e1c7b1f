"""/metrics for Prometheus: jobs by status, scenarios computed, scenarios per second, queue
depth (read from the registry at scrape time, so every API replica reports the same), and
request latency by route (this process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import queries
from jobs.registry import Registry
from jobs.status import JobStatus

_RATE_WINDOW = timedelta(seconds=60)


class JobsCollector(Collector):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        counts = queries.status_counts(self.registry)
        jobs = GaugeMetricFamily("edt_jobs", "Jobs by status", labels=["status"])
        for s in JobStatus:
            jobs.add_metric([s.value], counts.get(s.value, 0))
        yield jobs
        yield GaugeMetricFamily(
            "edt_queue_depth",
            "Jobs queued, waiting for the scheduler",
            value=counts.get(JobStatus.QUEUED.value, 0),
        )
        yield CounterMetricFamily(
            "edt_scenarios_computed",
            "Scenarios computed, over all jobs",
            value=queries.scenarios_done_total(self.registry),
        )
        since = datetime.now(UTC) - _RATE_WINDOW
        rows = queries.rows_committed_since(self.registry, since)
        yield GaugeMetricFamily(
            "edt_scenarios_per_second",
            "Scenario rows committed per second, last minute",
            value=rows / _RATE_WINDOW.total_seconds(),
        )


class Metrics:
    """One prometheus registry per app (tests create several apps in one process)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(JobsCollector(registry))
        self.latency = Histogram(
            "edt_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class LatencyMiddleware:
    """Times each request under its route template (/v1/jobs/{job_id}), not its raw path,
    so that label cardinality stays bounded."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status[0])).observe(
                time.perf_counter() - t0
            )
