"""The HTTP side of the `edt` CLI: `serve`, `scheduler`, `submit`, `usage`, and the `--api`
variants of status/jobs/cancel/resume/results (plain functions, called from api.cli).

Registered on api.cli's typer app when api.cli imports this module (its last line).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from api.cli import app
from api.cli_setup import (
    AddressOpt,
    ApiOpt,
    RegistryOpt,
    StorageOpt,
    TokenOpt,
    err,
    fail,
    settings_from,
)
from api.display import console
from edt_compute.validation import SpecError

# Exit codes of `submit --wait` by final status, as `edt run` and `edt wait` (api.cli).
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 1, "interrupted": 3}


def _client(api: str, token: str | None) -> Any:
    from api.client import Client

    return Client(api, token or None)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a client call; an error answer becomes one line on stderr and exit 1 (2 for 4xx
    input errors), never a traceback."""
    import httpx

    from api.client import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        fail(f"{exc.message} ({exc.status} {exc.code})", 2 if exc.status in (413, 422) else 1)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API: {exc}")


def _job_dict(job: Any) -> dict[str, Any]:
    out: dict[str, Any] = job.model_dump(mode="json", exclude_none=True)
    return out


# ---- the --api variants (called from api.cli's commands) ------------------------------


def remote_status(api: str, token: str | None, job_id: str) -> None:
    with _client(api, token) as c:
        console.print_json(json.dumps(_job_dict(_call(c.job, job_id))))


def remote_jobs(api: str, token: str | None, limit: int, as_json: bool = False) -> None:
    with _client(api, token) as c:
        page = _call(c.jobs, limit=limit)
    if as_json:
        print(json.dumps([_job_dict(j) for j in page.data]))
        return
    t = Table("name", "status", "done/total", "tenant")
    # Scripts copy ids from this table: never cut one, whatever the terminal's width.
    width = max((len(j.id) for j in page.data), default=2)
    t.columns.insert(0, Column("id", no_wrap=True, min_width=width))
    for j in page.data:
        t.add_row(j.id, j.name, j.status.value, f"{j.scenarios_done}/{j.total_scenarios}", j.tenant)
    console.print(t, soft_wrap=True)


def remote_cancel(api: str, token: str | None, job_id: str) -> None:
    with _client(api, token) as c:
        j = _call(c.cancel, job_id)
    console.print(
        f"{job_id}: {j.status.value}{' (cancel requested)' if j.cancel_requested else ''}"
    )


def remote_resume(api: str, token: str | None, job_id: str) -> None:
    with _client(api, token) as c:
        j = _call(c.resume, job_id)
    console.print(f"{job_id}: {j.status.value}")


def remote_results(api: str, token: str | None, job_id: str, output: Path | None) -> None:
    with _client(api, token) as c:
        if output is None:
            writer: csv.DictWriter[str] | None = None
            for row in _call(lambda: list(c.rows(job_id))):
                if writer is None:
                    writer = csv.DictWriter(sys.stdout, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
            return
        if output.suffix not in (".parquet", ".csv"):
            fail(f"{output}: use a .parquet or .csv file name", 2)
        if not output.parent.is_dir():
            fail(f"{output.parent}: no such folder", 2)
        _call(c.download, job_id, output)
    err.print(f"{job_id}: results written to {output}", highlight=False)


# ---- new commands ---------------------------------------------------------------------


def _follow_remote(c: Any, job_id: str) -> str:
    """A progress bar on a terminal; elsewhere (Slurm, CI logs) a plain line every 5 s."""
    import time

    first = _call(c.job, job_id)

    def state(j: Any) -> str:
        rate = f", {j.rate:,.0f}/s" if j.rate else ""
        return f"{j.status.value}{rate}, {j.scenarios_failed} failed"

    if not err.is_terminal:
        last = [0.0]

        def line(j: Any) -> None:
            if time.monotonic() - last[0] >= 5.0 or j.status.is_terminal():
                last[0] = time.monotonic()
                err.print(
                    f"{job_id}: {j.scenarios_done:,}/{j.total_scenarios:,} {state(j)}",
                    highlight=False,
                )

        return str(_call(c.wait, job_id, poll=1.0, on_progress=line).status.value)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[state]}"),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task(job_id, total=first.total_scenarios, state=state(first))

        def update(j: Any) -> None:
            bar.update(task, total=j.total_scenarios, completed=j.scenarios_done, state=state(j))

        final = _call(c.wait, job_id, poll=1.0, on_progress=update)
    return str(final.status.value)


@app.command()
def submit(
    job_file: Path,
    wait: Annotated[bool, typer.Option("--wait", help="follow the job to its end")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Queue a job over --api, or in the local registry (for `edt serve`/`edt scheduler`)."""
    from jobs.spec import load_job

    try:
        job = load_job(job_file)
    except (SpecError, ValueError) as exc:
        fail(str(exc), 2)
    if api:
        with _client(api, token) as c:
            record = _call(c.submit, job.document())
            print(record.id)
            if not wait:
                return
            final = _follow_remote(c, record.id)
            if final == "succeeded":
                console.print_json(json.dumps(_call(c.summary, record.id)))
        raise typer.Exit(EXIT_CODES.get(final, 1))
    import os

    from api.cli import _exit_for
    from api.cli_setup import open_registry, open_storage
    from api.follow import follow
    from cluster.launch import submit_job

    s = settings_from(storage, registry, None)
    reg, store = open_registry(s), open_storage(s.storage)
    # Chunks sized for this machine's CPUs: a queued job must not need Ray to be submitted.
    rec = submit_job(reg, store, job, workers=s.workers or os.cpu_count() or 1)
    print(rec.id)
    if wait:
        _exit_for(follow(reg, rec.id, store), store)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="env EDT_HOST")] = None,
    port: Annotated[int | None, typer.Option("--port", help="env EDT_PORT")] = None,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    address: AddressOpt = None,
    tokens_file: Annotated[
        str | None, typer.Option("--tokens-file", help="env EDT_TOKENS_FILE")
    ] = None,
    scheduler: Annotated[
        bool, typer.Option("--scheduler/--no-scheduler", help="run the scheduler in this process")
    ] = True,
) -> None:
    """Serve the /v1 API (embedded Ray by default, like `edt run`)."""
    import logging

    import uvicorn

    from api.app import bind_problem, create_app
    from api.auth import TokensFileError, load_tokens

    s = settings_from(storage, registry, address)
    extra = {"host": host, "port": port, "tokens_file": tokens_file}
    s = s.model_copy(update={k: v for k, v in extra.items() if v is not None})
    if not scheduler:
        s = s.model_copy(update={"scheduler": False})
    if problem := bind_problem(s):
        fail(problem, 2)
    from api.cli_setup import open_registry, open_storage

    # Bad registry or storage settings: one line and exit 2, before anything listens.
    checked = {"registry": open_registry(s).url, "storage": open_storage(s.storage).url}
    s = s.model_copy(update=checked)
    try:
        tokens = load_tokens(s.tokens_file)
    except TokensFileError as exc:
        fail(str(exc), 2)
    if not tokens.enabled:
        err.print(
            f"no tokens file (EDT_TOKENS_FILE): serving without authentication on {s.host} only",
            highlight=False,
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    application = create_app(s, tokens=tokens)
    err.print(f"serving http://{s.host}:{s.port} (OpenAPI at /docs)", highlight=False)
    uvicorn.run(application, host=s.host, port=s.port, log_level="warning")


@app.command(name="scheduler")
def scheduler_command(
    registry: RegistryOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run the scheduler and reconciler alone (when servers run with --no-scheduler)."""
    import logging

    from cluster.runtime import connect
    from cluster.scheduler import Scheduler, ray_launcher
    from jobs.registry import Registry

    s = settings_from(None, registry, address)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    connect(s.address, s.workers)
    sched = Scheduler(
        Registry(s.registry),
        ray_launcher(),
        max_running=s.max_running_jobs,
        address=s.address,
        workers=s.workers,
        resume_budget=s.resume_budget,
        interval=s.scheduler_interval,
    )
    err.print(
        f"scheduler: at most {s.max_running_jobs} running jobs; Ctrl-C stops it", highlight=False
    )
    try:
        sched.run()
    except KeyboardInterrupt:
        sched.stop()


@app.command()
def usage(
    api: ApiOpt = None,
    token: TokenOpt = None,
    registry: RegistryOpt = None,
    days: Annotated[float, typer.Option("--days", min=0.001, help="window: the last N days")] = 1.0,
) -> None:
    """Jobs, scenarios and CPU-seconds per tenant over the last --days (like sacct)."""
    from datetime import UTC, datetime, timedelta

    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    if api:
        with _client(api, token) as c:
            rows = [
                (u.tenant, u.jobs, u.scenarios, u.cpu_seconds)
                for u in _call(c.usage, since, until).data
            ]
    else:
        from api import queries
        from api.cli_setup import open_registry

        # A reading command: never creates a registry.
        found = queries.usage(
            open_registry(settings_from(None, registry, None), existing=True), since, until
        )
        rows = [(t, j, n, c) for t, (j, n, c) in sorted(found.items())]
    t = Table("tenant", "jobs", "scenarios", "CPU-seconds", title=f"usage, last {days:g} day(s)")
    for tenant, jobs_n, scen, cpu in rows:
        t.add_row(tenant, f"{jobs_n:,}", f"{scen:,}", f"{cpu:,.1f}")
    console.print(t)
