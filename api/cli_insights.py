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
from api.cli_remote import api_call, api_client
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
        with api_client(api, token) as c:
            api_call(c.report, job_id, output)
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
        int, typer.Option("--max-rows", min=100, help="above this, a fixed sample of this many")
    ] = 100_000,
    storage: StorageOpt = None,
    registry: RegistryOpt = None,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Which input ranges lead to metric < below (default: NPV < 0): a PRIM box (JSON)."""
    if below is not None and above is not None:  # refused before any registry or HTTP call
        fail("--below and --above: give one of them", EXIT_BAD_INPUT)
    if api:
        with api_client(api, token) as c:
            box = api_call(c.discover, job_id, metric, below, above, max_rows)
    else:
        from jobs import insights

        reg = open_registry(settings_from(None, registry, None), existing=True)
        store = job_store(get_job(reg, job_id), storage)
        try:
            box = insights.discover(
                store, job_id, metric, below=below, above=above, max_rows=max_rows
            )
        except FileNotFoundError as exc:
            fail(str(exc))
        except KeyError as exc:
            fail(f"--metric: {exc.args[0]}", EXIT_BAD_INPUT)
        except insights.DiscoveryError as exc:
            fail(str(exc))
    print(json.dumps(box, indent=2))
