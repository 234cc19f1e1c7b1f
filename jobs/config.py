"""Checks of the registry and storage settings, made before anything is written.

A bad setting must cost the user one line naming the setting and the problem, never a
traceback, a half-registered job or a folder created by mistake. Each check returns the
canonical form of the URL (absolute paths), which is what the registry records: a supervisor
on Ray runs in another working directory.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import fsspec
import sqlalchemy as sa

__all__ = ["ConfigError", "check_registry_url", "check_storage_url", "public_url"]

_REGISTRY_HELP = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting and the problem."""


def public_url(url: str) -> str:
    """The URL without a password, for messages and the registry."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def check_registry_url(url: str, *, create_folder: bool = False, must_exist: bool = False) -> str:
    """A usable registry URL, canonical (absolute SQLite path); ConfigError otherwise.

    The folder of a SQLite file must exist unless `create_folder` (the default home); with
    `must_exist` (commands that only read) so must the file, which is never created then."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"registry: {url!r} is not a database URL; {_REGISTRY_HELP}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        raise ConfigError(
            f"registry: {public_url(url)!r}: write postgresql+psycopg:// (SQLAlchemy does not "
            "accept the postgres:// alias)"
        )
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"registry: unsupported database {backend!r}; {_REGISTRY_HELP}")
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError:
        raise ConfigError(
            f"registry: the driver {parsed.drivername!r} is not installed; for PostgreSQL use "
            "postgresql+psycopg://... with pip install -e '.[postgres]'"
        ) from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(
            f"registry: unknown driver {parsed.drivername!r}; {_REGISTRY_HELP}"
        ) from None
    if backend == "postgresql":
        return url
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "mode=memory" in url:
        raise ConfigError(
            f"registry: {url!r} is an in-memory SQLite database, which forgets every job when "
            "this process ends; give a file: sqlite:///PATH"
        )
    path = Path(database).expanduser().absolute()
    folder = path.parent
    if path.is_dir():
        raise ConfigError(f"registry: {path} is a folder, not a SQLite file")
    if must_exist and not path.is_file():
        raise ConfigError(f"registry: there is no registry at {path} (no job was run with it)")
    if not folder.is_dir():
        if not create_folder:
            raise ConfigError(f"registry: the folder {folder} of {url!r} does not exist")
        _check_creatable(folder, "registry")
        folder.mkdir(parents=True, exist_ok=True)
    _check_writable(folder, "registry")
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def _nearest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _check_creatable(folder: Path, setting: str) -> None:
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ConfigError(f"{setting}: {existing} is a file, so {folder} cannot be a folder")
    _check_writable(existing, setting)


def _check_writable(folder: Path, setting: str) -> None:
    # os.access says yes to root even on a read-only mount: try a real (temporary) file.
    try:
        fd, probe = tempfile.mkstemp(prefix=".edt-probe-", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.remove(probe)


def check_storage_url(url: str) -> str:
    """A usable results root, canonical (absolute local path); ConfigError otherwise.

    Nothing is left behind: a local folder that does not exist yet is only checked to be
    creatable; an object store gets one probe object, written and deleted."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol == "file":
        local = Path(url.removeprefix("file://")).expanduser().absolute()
        if local.exists() and not local.is_dir():
            raise ConfigError(f"storage: {local} is a file, not a folder")
        if local.is_dir():
            _check_writable(local, "storage")
        else:
            _check_creatable(local, "storage")
        return str(local)
    if protocol != "s3":
        raise ConfigError(
            f"storage: unsupported protocol {protocol}:// in {url!r}; use a folder or s3://BUCKET/PREFIX"
        )
    bucket_and_prefix = url.removeprefix("s3://").strip("/")
    if not bucket_and_prefix:
        raise ConfigError(f"storage: {url!r} names no bucket; use s3://BUCKET/PREFIX")
    probe = f"{bucket_and_prefix}/.edt-probe-{uuid.uuid4().hex}"
    try:
        fs = fsspec.filesystem(
            "s3",
            skip_instance_cache=True,
            config_kwargs={
                "connect_timeout": 5,
                "read_timeout": 10,
                "retries": {"max_attempts": 2},
            },
        )
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"storage: cannot write to {url}: {text}") from None
    return url.rstrip("/")
