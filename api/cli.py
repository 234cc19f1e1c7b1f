"""The `edt` command line: run jobs embedded, validate job files, inspect and resume jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from api.settings import Settings
from edt_compute.validation import SpecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="EDT Compute: mass scenario and Monte Carlo runs.",
)
console = Console()
err = Console(stderr=True)

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage", help="results root URL (file://..., s3://bucket/prefix); env EDT_STORAGE"
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="registry URL (sqlite:///..., postgresql+psycopg://...); env EDT_REGISTRY",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster address; default embedded; env EDT_ADDRESS / RAY_ADDRESS"
    ),
]
ApiOpt = Annotated[
    str | None,
    typer.Option("--api", envvar="EDT_API_URL", help="over HTTP: API base URL; env EDT_API_URL"),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="EDT_TOKEN", help="bearer token; env EDT_TOKEN")
]


def _settings(storage: str | None, registry: str | None, address: str | None) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            k: v
            for k, v in {"storage": storage, "registry": registry, "address": address}.items()
            if v
        }
    )


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _open(s: Settings) -> tuple[Any, Any]:
    from jobs.registry import Registry
    from jobs.storage import ResultStore

    return Registry(s.registry_url()), ResultStore(s.storage_url())


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:,.3f}"


def _print_summary(job_id: str, summary: dict[str, Any], store: Any) -> None:
    npv, irr = summary["npv"], summary["irr"]
    cur = summary.get("currency", "")
    t = Table(title=f"{summary['job']} ({job_id}), money in {cur}", show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        (
            "scenarios",
            f"{summary['scenarios']:,} ("
            + ", ".join(f"{k} {v:,}" for k, v in summary["status_counts"].items() if v)
            + ")",
        ),
        ("NPV mean", _fmt(npv.get("mean"))),
        ("NPV P5", _fmt(npv.get("p5"))),
        ("NPV P50", _fmt(npv.get("p50"))),
        ("NPV P95", _fmt(npv.get("p95"))),
        ("P(NPV<0)", _fmt(npv.get("prob_negative"), pct=True)),
        ("NPV CVaR 95%", _fmt(npv.get("cvar95"))),
        ("IRR median", _fmt(irr.get("p50"), pct=True)),
    ]
    conv = summary.get("convergence")
    if conv:
        how = "targets met" if conv["met"] else "max_samples reached, targets not met"
        rows.append(("stopped", f"{conv['n']:,} of max {conv['max_samples']:,} ({how})"))
        final = [r for r in conv["history"] if r["n"] == conv["n"]]
        rows += [("target", _interval_text(r)) for r in final]
    if summary.get("share_built") is not None:
        rows.append(("projects built", _fmt(summary["share_built"], pct=True)))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if summary.get("tornado"):
        # One-at-a-time sets: the swings are the answer, not the distribution of 2k+1 points.
        tt = Table("parameter", "NPV at low", "NPV at high", "swing", title="tornado (NPV)")
        for row in summary["tornado"]:
            tt.add_row(row["parameter"], _fmt(row["low"]), _fmt(row["high"]), _fmt(row["swing"]))
        console.print(tt)
    console.print(f"results: {store.url_of(job_id, 'scenarios')}", highlight=False, soft_wrap=True)


def _convergence_text(rows: tuple[dict[str, Any], ...]) -> str:
    """The adaptive run at its last checkpoint: the first target not met yet (or the first),
    e.g. `n=1,053: npv mean 4,617.769 [4,518.071, 4,717.467] ±99.698 (goal ±100.000)`."""
    if not rows:
        return ""
    row = next((r for r in rows if not r["met"]), rows[0])
    met = sum(r["met"] for r in rows)
    others = f", {met}/{len(rows)} targets met" if len(rows) > 1 else ""
    return f"n={row['n']:,}: {_interval_text(row)}{others}"


def _interval_text(row: dict[str, Any]) -> str:
    pct = row["statistic"] == "prob_negative"
    text = f"{row['metric']} {row['statistic']} {_fmt(row['estimate'], pct)}"
    if row["half_width"] is None:
        text += " [interval not defined yet]"
    else:
        bounds = f"[{_fmt(row['lower'], pct)}, {_fmt(row['upper'], pct)}]"
        text += f" {bounds} ±{_fmt(row['half_width'], pct)}"
    return text + f" (goal ±{_fmt(row['goal'], pct)})"


def _run(runner: Any, job_id: str, total: int) -> Any:
    from cluster.supervisor import Progress as JobProgress

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[convergence]}"),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(job_id, total=total, rate="", convergence="")

        def update(p: JobProgress) -> None:
            bar.update(
                task,
                total=p.total,  # an adaptive run's cap, then where it stopped
                completed=p.done,
                rate=f"{p.rate:,.0f}/s, {p.failed} failed",
                convergence=_convergence_text(p.convergence),
            )

        runner.on_progress = update
        return runner.run(job_id)


@app.command()
def run(
    job_file: Path,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    address: AddressOpt = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="actors (default: one per CPU)")
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", min=1, help="scenarios per chunk")
    ] = None,
) -> None:
    """Run a job file to completion on embedded (or --address) Ray and print its summary."""
    from cluster.supervisor import JobRunner
    from jobs.spec import load_job

    s = _settings(storage, registry, address)
    try:
        job = load_job(job_file)
    except (SpecError, ValueError) as exc:
        _fail(str(exc), 2)
    reg, store = _open(s)
    runner = JobRunner(reg, store, address=s.address or None, workers=workers)
    record = runner.submit(job, chunk_size=chunk_size)
    upto = "up to " if job.stopping_rule is not None else ""
    err.print(
        f"job {record.id}: {upto}{record.total_scenarios:,} scenarios"
        f" in {upto}{record.total_chunks} chunks",
        highlight=False,
    )
    try:
        final = _run(runner, record.id, record.total_scenarios)
    except Exception as exc:
        _fail(f"job {record.id} failed: {exc}")
    if final.status.value != "succeeded":
        _fail(f"job {record.id} {final.status.value}")
    _print_summary(record.id, store.read_json(record.id, "summary.json"), store)


@app.command()
def resume(
    job_id: str,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    address: AddressOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Finish a job whose driver died: recompute only chunks with no committed part."""
    if api:
        return cli_remote.remote_resume(api, token, job_id)
    from cluster.supervisor import JobRunner
    from jobs.registry import JobNotFound

    s = _settings(storage, registry, address)
    reg, store = _open(s)
    try:
        record = reg.get(job_id)
    except JobNotFound:
        _fail(f"no job {job_id} in {s.registry_url()}")
    if record.status.is_terminal():
        _fail(f"job {job_id} is {record.status.value}; only unfinished jobs can be resumed")
    missing = record.total_chunks - len(reg.committed_chunks(job_id))
    # An adaptive run stops at its rule, usually long before its last chunk.
    upto = "at most " if record.spec.get("scenarios", {}).get("until") else ""
    err.print(
        f"job {job_id}: {upto}{missing} of {record.total_chunks} chunks to compute",
        highlight=False,
    )
    from jobs.registry import JobBusy

    runner = JobRunner(reg, store, address=s.address or None, workers=workers)
    try:
        final = _run(runner, job_id, record.total_scenarios)
    except JobBusy as exc:
        _fail(str(exc))  # its live supervisor goes on; nothing was changed
    except Exception as exc:
        _fail(f"job {job_id} failed: {exc}")
    if final.status.value != "succeeded":
        _fail(f"job {job_id} {final.status.value}")
    _print_summary(job_id, store.read_json(job_id, "summary.json"), store)


@app.command()
def validate(job_file: Path) -> None:
    """Check a job file and its model; list every problem with its path."""
    from jobs.spec import load_job

    try:
        job = load_job(job_file)
    except (SpecError, ValueError) as exc:
        _fail(str(exc), 2)
    count = f"{job.total:,} scenarios"
    if job.stopping_rule is not None:
        count = f"adaptive, {job.stopping_rule.min_samples:,} to {job.total:,} scenarios"
    console.print(
        f"{job_file}: valid ({count}, mode {job.spec.mode}, model {job.model.name})",
        highlight=False,
    )


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
        _fail(str(exc), 2)
    t = Table("parameter path", "base value", title=f"{model.name}: paths for scenarios")
    for path, value in base_values(model).items():
        t.add_row(path, f"{value:g}")
    console.print(t)


@app.command()
def status(
    job_id: str, registry: RegistryOpt = None, api: ApiOpt = None, token: TokenOpt = None
) -> None:
    """Status and progress of a job."""
    if api:
        return cli_remote.remote_status(api, token, job_id)
    from jobs.registry import JobNotFound, Registry

    s = _settings(None, registry, None)
    try:
        r = Registry(s.registry_url()).get(job_id)
    except JobNotFound:
        _fail(f"no job {job_id}")
    console.print_json(
        json.dumps(
            {
                "id": r.id,
                "name": r.name,
                "status": r.status.value,
                "done": r.scenarios_done,
                "failed": r.scenarios_failed,
                "total": r.total_scenarios,
                "error": r.error,
                "created_at": r.created_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "runner": r.runner,
                "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
            }
        )
    )


@app.command()
def jobs(
    registry: RegistryOpt = None, limit: int = 20, api: ApiOpt = None, token: TokenOpt = None
) -> None:
    """Recent jobs."""
    if api:
        return cli_remote.remote_jobs(api, token, limit)
    from jobs.registry import Registry

    s = _settings(None, registry, None)
    t = Table("id", "name", "status", "done/total")
    for r in Registry(s.registry_url()).list_jobs(limit=limit):
        t.add_row(r.id, r.name, r.status.value, f"{r.scenarios_done}/{r.total_scenarios}")
    console.print(t)


@app.command()
def cancel(
    job_id: str, registry: RegistryOpt = None, api: ApiOpt = None, token: TokenOpt = None
) -> None:
    """Ask a job to stop: dispatch stops, in-flight chunks finish, committed parts stay."""
    if api:
        return cli_remote.remote_cancel(api, token, job_id)
    from jobs.registry import JobNotFound, Registry

    s = _settings(None, registry, None)
    try:
        r = Registry(s.registry_url()).request_cancel(job_id)
    except JobNotFound:
        _fail(f"no job {job_id}")
    console.print(
        f"{job_id}: {r.status.value}{' (cancel requested)' if r.cancel_requested else ''}"
    )


@app.command()
def results(
    job_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    storage: StorageOpt = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export a job's scenario table (Parquet or CSV by extension; CSV to stdout by default)."""
    if api:
        return cli_remote.remote_results(api, token, job_id, output)
    from jobs.storage import ResultStore

    s = _settings(storage, None, None)
    store = ResultStore(s.storage_url())
    try:
        parts = store.list_parts(job_id)
    except ValueError as exc:
        _fail(str(exc), 2)
    if not parts:
        _fail(f"no results for job {job_id} under {s.storage_url()}")
    table = store.read_scenarios(job_id)
    if output is None:
        table.to_pandas().to_csv(sys.stdout, index=False)
    elif output.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    else:
        table.to_pandas().to_csv(output, index=False)


# The HTTP side of the CLI (serve, scheduler, submit, usage, --api variants) lives there.
from api import cli_remote  # noqa: E402

if __name__ == "__main__":  # pragma: no cover
    app()
