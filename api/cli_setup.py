"""What every `edt` command shares: its options, exit codes, and the one-line refusals of bad
settings (registry, storage, Ray address) before anything is opened or written."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from api.settings import Settings

err = Console(stderr=True)

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_CTRL_C = 1, 2, 3, 130

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
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="actors (default: one per CPU)")
]
ApiOpt = Annotated[
    str | None,
    typer.Option("--api", envvar="EDT_API_URL", help="over HTTP: API base URL; env EDT_API_URL"),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="EDT_TOKEN", help="bearer token; env EDT_TOKEN")
]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_from(storage: str | None, registry: str | None, address: str | None) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            k: v
            for k, v in {"storage": storage, "registry": registry, "address": address}.items()
            if v
        }
    )


def open_registry(s: Settings, *, existing: bool = False) -> Any:
    """The registry, after its URL passed the checks (exit 2 with one line otherwise);
    `existing`: a command that only reads, which never creates a registry."""
    from jobs.config import ConfigError, check_registry_url, public_url
    from jobs.faults import fault_timeout
    from jobs.registry import Registry

    try:
        fault_timeout()  # a malformed EDT_FAULT_TIMEOUT is a bad setting like any other
        url = check_registry_url(
            s.registry, create_folder=s.registry_is_default and not existing, must_exist=existing
        )
        return Registry(url)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except Exception as exc:  # unreachable server, bad credentials
        first = " ".join(str(exc).split())[:300]
        fail(f"registry: cannot open {public_url(s.registry)}: {first}", EXIT_BAD_INPUT)


def open_storage(url: str) -> Any:
    from jobs.config import ConfigError, check_storage_url
    from jobs.storage import ResultStore

    try:
        return ResultStore(check_storage_url(url))
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def job_store(record: Any, explicit: str | None) -> Any:
    """The job's own storage (recorded at submit); an explicit --storage must agree."""
    from jobs.storage import ResultStore

    recorded = record.storage
    if explicit:
        given = open_storage(explicit).url
        if recorded and given != recorded:
            fail(
                f"--storage {given} is not where job {record.id} lives ({recorded}); "
                "drop --storage to use the recorded one",
                EXIT_BAD_INPUT,
            )
        return ResultStore(recorded or given)
    if recorded:
        return ResultStore(recorded)
    return ResultStore(Settings().storage)  # a job registered before storage was recorded


def get_job(reg: Any, job_id: str) -> Any:
    from jobs.registry import JobNotFound

    try:
        return reg.get(job_id)
    except JobNotFound:
        fail(f"no job {job_id} in {reg}", EXIT_BAD_INPUT)


def connect_ray(address: str | None) -> Any:
    """Ray, embedded or at `address`; an address where nothing listens is refused at once."""
    from cluster.liveness import head_reachable
    from cluster.runtime import connect

    if address and address != "auto" and not head_reachable(address, timeout=5):
        fail(f"address: no Ray cluster answers at {address}", EXIT_BAD_INPUT)
    return connect(address)
