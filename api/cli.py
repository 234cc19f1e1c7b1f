"""The `edt` command line: run and follow jobs, validate job files, inspect and resume jobs.

Exit codes: 0 succeeded, 1 failed or cancelled, 2 bad input or configuration (refused before
anything is written), 3 interrupted (resumable with `edt resume ID`), 130 stopped by Ctrl-C.
Expected errors are one line; `edt --debug ...` shows the traceback as well.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.table import Table

from api.cli_setup import (
    EXIT_BAD_INPUT,
    EXIT_CTRL_C,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    AddressOpt,
    ApiOpt,
    RegistryOpt,
    StorageOpt,
    TokenOpt,
    WorkersOpt,
    connect_ray,
    err,
    fail,
    get_job,
    job_store,
    open_registry,
    open_storage,
    settings_from,
)
from api.display import console, print_summary
from api.settings import Settings
from edt_compute.validation import SpecError

if TYPE_CHECKING:
    from jobs.status import JobStatus

_debug = {"on": False}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="EDT Compute: mass scenario and Monte Carlo runs.",
)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks of errors")] = False,
) -> None:
    _debug["on"] = debug


class _Stopped(Exception):  # noqa: N818 (Ctrl-C or SIGTERM while following)
    pass


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped()


def _drive(
    reg: Any, store: Any, job_id: str, s: Settings, workers: int | None, resuming: bool = False
) -> NoReturn:
    """Start the job's supervisor on Ray, follow it to the end, exit by its final status.

    Embedded, the job lives in this process: stopping it (Ctrl-C, SIGTERM) interrupts the job
    (resumable); a killed process is cleaned up by the reaper. On a cluster the job goes on
    without this process."""
    from api.follow import follow
    from cluster.launch import start_supervisor, stop_supervisor
    from cluster.reaper import Reaper
    from cluster.runtime import shutdown
    from jobs.faults import InfrastructureError, one_line
    from jobs.status import JobStatus

    info = connect_ray(s.address)
    reaper = Reaper() if info.embedded else None
    if reaper is not None:
        reaper.watch_job(job_id, reg.url)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        start_supervisor(job_id, reg.url, address=s.address, workers=workers)
        cluster = None
        if not info.embedded:
            # Following reads only the registry. Connected, this process would be killed by
            # Ray's client 60 s after the head is lost, before it could say what happened.
            shutdown()
            cluster = info.address
        final = follow(reg, job_id, store, resuming=resuming, starting=True, cluster=cluster)
    except (KeyboardInterrupt, _Stopped):
        if not info.embedded:
            err.print(
                f"{job_id} goes on running on the cluster; follow it with: edt wait {job_id}",
                highlight=False,
            )
            raise typer.Exit(EXIT_CTRL_C) from None
        stop_supervisor(job_id)
        record = reg.get(job_id)
        if not record.status.is_terminal():
            reg.set_status(job_id, JobStatus.INTERRUPTED, error="stopped with its edt run")
        err.print(f"{job_id} interrupted; resume with: edt resume {job_id}", highlight=False)
        raise typer.Exit(EXIT_CTRL_C) from None
    except InfrastructureError as exc:  # the registry stayed unreachable while following
        if info.embedded:
            stop_supervisor(job_id)
        then = "follow it again with: edt wait" if not info.embedded else "resume with: edt resume"
        fail(f"job {job_id}: {one_line(exc)}; {then} {job_id}", EXIT_INTERRUPTED)
    finally:
        if info.embedded:
            shutdown()
            if reaper is not None:
                reaper.bye()
    _exit_for(final, store)


def _exit_for(record: Any, store: Any) -> NoReturn:
    from cluster.liveness import shown_status
    from jobs.status import JobStatus

    status, note = shown_status(record)
    if status is JobStatus.QUEUED:
        fail(
            f"job {record.id} never started: no supervisor took it (see Ray's logs); "
            f"start it with: edt resume {record.id}",
            EXIT_INTERRUPTED,
        )
    if status is JobStatus.SUCCEEDED:
        print_summary(record.id, store.read_json(record.id, "summary.json"), store)
        raise typer.Exit(0)
    if status is JobStatus.INTERRUPTED:
        fail(f"job {record.id} interrupted: {note}", EXIT_INTERRUPTED)
    fail(f"job {record.id} {status.value}" + (f": {record.error}" if record.error else ""))


@app.command()
def run(
    job_file: Path,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", min=1, help="scenarios per chunk")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="cluster only: print the job id and return")
    ] = False,
) -> None:
    """Run a job file on embedded (or --address) Ray, follow it and print its summary."""
    from cluster.launch import start_supervisor, submit_job
    from jobs.spec import load_job

    s = settings_from(storage, registry, address)
    if detach and not s.address:
        fail("--detach needs a cluster (--address): an embedded job stops with its process", 2)
    try:
        job = load_job(job_file)
    except (SpecError, ValueError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    store = open_storage(s.storage)  # both settings checked before anything is created
    reg = open_registry(s)
    info = connect_ray(s.address)
    record = submit_job(
        reg, store, job, chunk_size=chunk_size, workers=min(workers or info.cpus, info.cpus)
    )
    upto = "up to " if job.stopping_rule is not None else ""
    err.print(
        f"job {record.id}: {upto}{record.total_scenarios:,} scenarios"
        f" in {upto}{record.total_chunks} chunks",
        highlight=False,
    )
    if detach:
        start_supervisor(record.id, reg.url, address=s.address, workers=workers)
        print(record.id)
        return
    _drive(reg, store, record.id, s, workers)


@app.command()
def resume(
    job_id: str,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    detach: Annotated[bool, typer.Option("--detach", help="cluster only: do not follow")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Finish an interrupted job: recompute only the chunks with no committed part."""
    if api:
        return cli_remote.remote_resume(api, token, job_id)
    from cluster.launch import check_resumable
    from jobs.registry import JobBusy
    from jobs.spec import prepare_job
    from jobs.status import JobStatus

    s = settings_from(storage, registry, address)
    reg = open_registry(s, existing=True)
    get_job(reg, job_id)  # an unknown id: exit 2 with one line
    try:
        record = check_resumable(reg, job_id)
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except JobBusy as exc:
        fail(str(exc))
    store = job_store(record, storage)
    missing = record.total_chunks - len(reg.committed_chunks(job_id))
    # An adaptive run stops at its rule, usually long before its last chunk.
    upto = "at most " if prepare_job(dict(record.spec)).stopping_rule is not None else ""
    err.print(
        f"job {job_id}: {upto}{missing} of {record.total_chunks} chunks to compute",
        highlight=False,
    )
    if detach:
        if not s.address:
            fail("--detach needs a cluster (--address)", EXIT_BAD_INPUT)
        from cluster.launch import start_supervisor

        connect_ray(s.address)
        start_supervisor(job_id, reg.url, address=s.address, workers=workers)
        return
    _drive(reg, store, job_id, s, workers, resuming=record.status is JobStatus.INTERRUPTED)


@app.command()
def wait(job_id: str, registry: RegistryOpt = None) -> None:
    """Follow a job started elsewhere until it ends; exit by its final status."""
    from api.follow import follow

    reg = open_registry(settings_from(None, registry, None), existing=True)
    record = get_job(reg, job_id)
    store = job_store(record, None)
    try:
        final = follow(reg, job_id, store)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_CTRL_C) from None
    _exit_for(final, store)


@app.command()
def status(
    job_id: str, registry: RegistryOpt = None, api: ApiOpt = None, token: TokenOpt = None
) -> None:
    """Status and progress of a job (JSON)."""
    if api:
        return cli_remote.remote_status(api, token, job_id)
    from cluster.liveness import shown_status

    r = get_job(open_registry(settings_from(None, registry, None), existing=True), job_id)
    shown, note = shown_status(r)
    print(json.dumps(_record_json(r, shown, note), indent=2))


def _record_json(r: Any, shown: JobStatus, note: str | None) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "status": shown.value,
        "recorded_status": r.status.value,
        "note": note,
        "done": r.scenarios_done,
        "failed": r.scenarios_failed,
        "total": r.total_scenarios,
        "error": r.error,
        "message": r.message,
        "storage": r.storage,
        "interruptions": r.interruptions or 0,
        "created_at": r.created_at.isoformat(),
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "runner": r.runner,
        "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
    }


@app.command()
def jobs(
    registry: RegistryOpt = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Recent jobs, newest first (ids are never cut, whatever the terminal width)."""
    if api:
        return cli_remote.remote_jobs(api, token, limit, as_json)
    from cluster.liveness import shown_status

    records = open_registry(settings_from(None, registry, None), existing=True).list_jobs(
        limit=limit
    )
    rows = [(r, *shown_status(r)) for r in records]
    if as_json:
        print(json.dumps([_record_json(r, shown, note) for r, shown, note in rows], indent=2))
        return
    table = [("ID", "NAME", "STATUS", "DONE/TOTAL", "FAILED")]
    for r, shown, _ in rows:
        table.append(
            (
                r.id,
                r.name,
                shown.value,
                f"{r.scenarios_done}/{r.total_scenarios}",
                str(r.scenarios_failed),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:  # plain text: a script can cut the columns, a terminal never wraps ids
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def cancel(
    job_id: str, registry: RegistryOpt = None, api: ApiOpt = None, token: TokenOpt = None
) -> None:
    """Ask a job to stop: dispatch stops, in-flight chunks finish, committed parts stay."""
    if api:
        return cli_remote.remote_cancel(api, token, job_id)
    from cluster.liveness import shown_status
    from jobs.status import JobStatus

    reg = open_registry(settings_from(None, registry, None), existing=True)
    r = get_job(reg, job_id)
    if shown_status(r)[0] is JobStatus.INTERRUPTED and not r.status.is_terminal():
        # Nobody would see the flag: a job without a live supervisor is cancelled here.
        r = reg.set_status(job_id, JobStatus.CANCELLED, error=None)
    else:
        r = reg.request_cancel(job_id)
    print(f"{job_id}: {r.status.value}{' (cancel requested)' if r.cancel_requested else ''}")


@app.command()
def interrupt(
    job_id: str,
    reason: Annotated[str, typer.Option(help="recorded as the job's error")] = "interrupted",
    registry: RegistryOpt = None,
) -> None:
    """Record an unfinished job whose cluster is going away as interrupted (resumable).

    For batch scripts (cluster/slurm/edt-ray.sbatch) once their allocation ends: its Ray
    cluster, hence its supervisor, stop with it. A finished job is left as it is."""
    from jobs.status import JobStatus

    reg = open_registry(settings_from(None, registry, None), existing=True)
    r = get_job(reg, job_id)
    if not r.status.is_terminal() and r.status is not JobStatus.INTERRUPTED:
        r = reg.set_status(job_id, JobStatus.INTERRUPTED, error=reason)
    print(f"{job_id}: {r.status.value}")


@app.command()
def results(
    job_id: str,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="FILE.parquet or FILE.csv")
    ] = None,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export a job's scenario table (Parquet or CSV by extension; CSV to stdout by default)."""
    if output is not None:
        if output.suffix not in (".parquet", ".csv"):
            fail(f"-o {output}: unknown extension {output.suffix!r}; use .parquet or .csv", 2)
        if not output.parent.absolute().is_dir():
            fail(f"-o {output}: the folder {output.parent.absolute()} does not exist", 2)
    if api:
        return cli_remote.remote_results(api, token, job_id, output)
    reg = open_registry(settings_from(None, registry, None), existing=True)
    store = job_store(get_job(reg, job_id), storage)
    if not store.list_parts(job_id):
        fail(f"no results for job {job_id} under {store.url}")
    table = store.read_scenarios(job_id)
    if output is None:
        table.to_pandas().to_csv(sys.stdout, index=False)
    elif output.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    else:
        table.to_pandas().to_csv(output, index=False)


@app.command()
def validate(file: Path) -> None:
    """Check a job file (and its model) or a model file; list every problem with its path."""
    from jobs.spec import validate_file

    try:
        line = validate_file(file)
    except (SpecError, ValueError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    print(line)


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="a model: list its parameter paths")] = None,
) -> None:
    """List the bundled models, or the parameter paths (and base values) of one model."""
    from edt_compute.library import list_models, load_model
    from edt_compute.params import base_values

    if name is None:
        for n in list_models():
            m = load_model(n)
            console.print(
                f"{n}: {m.description} [{m.finance.horizon} x {m.finance.period}]", highlight=False
            )
        return
    try:
        model = load_model(name)
    except (FileNotFoundError, SpecError) as exc:
        fail(str(exc), 2)
    t = Table("parameter path", "base value", title=f"{model.name}: paths for scenarios")
    for path, value in base_values(model).items():
        t.add_row(path, f"{value:g}")
    console.print(t)


# The HTTP side of the CLI (serve, scheduler, submit, usage, --api variants) lives there.
from api import cli_insights, cli_remote  # noqa: E402, F401


def main() -> None:
    """Entry point: an unexpected error is one line (the traceback with --debug)."""
    from jobs.faults import one_line

    try:
        app()
    except Exception as exc:
        if _debug["on"]:
            raise
        err.print(
            f"[red]error:[/red] {one_line(exc)} (edt --debug ... shows the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":  # pragma: no cover
    main()
