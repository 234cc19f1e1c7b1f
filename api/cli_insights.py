"""`edt report ID -o FILE.html` and `edt discover ID [--metric npv --below 0]`, from the local
registry and storage, or over HTTP with --api.

Registered on api.cli's typer app when api.cli imports this module (its last lines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from api.cli import app
from api.cli_remote import _call, _client
from api.cli_setup import (
    EXIT_BAD_INPUT,
    ApiOpt,
    RegistryOpt,
    StorageOpt,
    TokenOpt,
    err,
    fail,
    get_job,
    job_store,
    open_registry,
    settings_from,
)


@app.command()
def report(
    job_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="FILE.html")],
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Write the job page as one self-contained HTML file (opens offline)."""
    if output.suffix.lower() not in (".html", ".htm"):
        fail(f"-o {output}: use a .html file name", EXIT_BAD_INPUT)
    if not output.parent.absolute().is_dir():
        fail(f"-o {output}: the folder {output.parent.absolute()} does not exist", EXIT_BAD_INPUT)
    if api:
        with _client(api, token) as c:
            _call(c.report, job_id, output)
    else:
        from api.report import page_data, render_report

        reg = open_registry(settings_from(None, registry, None), existing=True)
        record = get_job(reg, job_id)
        store = job_store(record, storage)
        if not store.list_parts(job_id):
            fail(f"no results for job {job_id} under {store.url}")
        output.write_text(render_report(page_data(record, store)), encoding="utf-8")
    err.print(f"{job_id}: report written to {output}", highlight=False)


@app.command()
def discover(
    job_id: str,
    metric: Annotated[str, typer.Option(help="npv, irr, mirr, pi, ...")] = "npv",
    below: Annotated[float | None, typer.Option(help="cases: metric below this")] = None,
    above: Annotated[float | None, typer.Option(help="cases: metric above this")] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=100, help="above this, every k-th scenario")
    ] = 100_000,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Which input ranges lead to metric < below (default: NPV < 0): a PRIM box (JSON)."""
    if below is not None and above is not None:
        fail("--below and --above: give one of them", EXIT_BAD_INPUT)
    if api:
        with _client(api, token) as c:
            box = _call(c.discover, job_id, metric, below, above, max_rows)
    else:
        from jobs import insights

        reg = open_registry(settings_from(None, registry, None), existing=True)
        store = job_store(get_job(reg, job_id), storage)
        threshold = above if above is not None else (below if below is not None else 0.0)
        try:
            box = insights.discover(
                store, job_id, metric, threshold, below=above is None, max_rows=max_rows
            )
        except FileNotFoundError as exc:
            fail(str(exc))
        except KeyError as exc:
            fail(f"--metric: {str(exc).strip(chr(39) + chr(34))}", EXIT_BAD_INPUT)
    print(json.dumps(box, indent=2))
