"""Results layout on object storage (local folder or S3) through fsspec.

Layout under the root (a contract scripts depend on)::

    jobs/<job_id>/job.json
    jobs/<job_id>/scenarios/part-NNNNN.parquet
    jobs/<job_id>/timeseries/part-NNNNN.parquet   (optional)
    jobs/<job_id>/summary.json
    jobs/<job_id>/convergence.json                (adaptive runs: rule history so far)
    jobs/<job_id>/decision.json                   (decide mode: the chosen build schedule)
    jobs/<job_id>/manifest.json                   (written last)

Every file appears whole or not at all: on local disk it is written under a hidden
temporary name (leading ".", which pyarrow datasets ignore) and renamed into place; on S3
(and other object stores) the finished bytes go up in one upload (a single PUT, or a
multipart upload above 100 MB), which S3 publishes only once complete.
"""

from __future__ import annotations

import io
import json
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from jobs.status import check_job_id

__all__ = ["PartKind", "ResultStore", "job_prefix", "part_name"]

PartKind = Literal["scenarios", "timeseries"]
_KINDS: tuple[PartKind, ...] = ("scenarios", "timeseries")
_PART_RE = re.compile(r"part-(\d{5,})\.parquet")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SORT_KEYS: dict[PartKind, list[str]] = {
    "scenarios": ["scenario_id"],
    "timeseries": ["scenario_id", "period"],
}


def job_prefix(job_id: str) -> str:
    """The job's folder relative to the storage root: ``jobs/<job_id>``."""
    return f"jobs/{check_job_id(job_id)}"


def part_name(chunk_index: int) -> str:
    """``part-NNNNN.parquet``: the chunk index, zero-padded to (at least) 5 digits."""
    if chunk_index < 0:
        raise ValueError(f"chunk index must be >= 0, got {chunk_index}")
    return f"part-{chunk_index:05d}.parquet"


def _check_kind(kind: str) -> PartKind:
    if kind not in _KINDS:
        raise ValueError(f"part kind must be one of {_KINDS}, got {kind!r}")
    return kind


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid file name {name!r}")
    return name


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself survive a power cut (POSIX only; Windows cannot open folders).
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultStore:
    """Reads and writes one storage root: ``file:///abs/path``, a plain path, or
    ``s3://bucket/prefix``.

    S3 settings come from the standard AWS chain of the process using the store
    (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ..., ~/.aws/config), or
    explicitly from ``storage_options`` (passed to the fsspec filesystem, e.g.
    ``{"endpoint_url": ...}``). Pickling keeps only the URL and options: the filesystem is
    created lazily in whichever process (e.g. a Ray actor) uses the store.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if "://" not in url:
            # Resolve now: a pickled store must mean the same folder in another process.
            url = os.path.abspath(os.path.expanduser(url))
        self.url = url.rstrip("/") or url
        self.storage_options = dict(storage_options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""

    def __reduce__(self) -> tuple[type[ResultStore], tuple[str, dict[str, Any]]]:
        return (ResultStore, (self.url, self.storage_options))

    def __repr__(self) -> str:
        return f"ResultStore({self.url!r})"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem, created on first use in this process."""
        return self._connect()[0]

    @property
    def root(self) -> str:
        """The storage root as a filesystem path (no protocol)."""
        return self._connect()[1]

    def _connect(self) -> tuple[fsspec.AbstractFileSystem, str]:
        if self._fs is None:
            # A private instance: fsspec's shared cache is keyed by arguments only, so it
            # would ignore a changed AWS_ENDPOINT_URL or credentials in this process.
            fs, root = fsspec.core.url_to_fs(
                self.url, skip_instance_cache=True, **self.storage_options
            )
            self._fs, self._root = fs, root.rstrip("/")
        return self._fs, self._root

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    # ---- paths ----------------------------------------------------------------------

    def path(self, job_id: str, *parts: str) -> str:
        """Filesystem path (no protocol) of ``jobs/<job_id>/<parts...>``."""
        return "/".join([self.root, job_prefix(job_id), *map(_check_name, parts)])

    def url_of(self, job_id: str, *parts: str) -> str:
        """Full URL (``file://...`` or ``s3://...``) of ``jobs/<job_id>/<parts...>``."""
        return str(self.fs.unstrip_protocol(self.path(job_id, *parts)))

    def part_path(self, job_id: str, chunk_index: int, kind: PartKind = "scenarios") -> str:
        """Filesystem path of ``<kind>/part-NNNNN.parquet``."""
        return self.path(job_id, _check_kind(kind), part_name(chunk_index))

    # ---- writing --------------------------------------------------------------------

    def write_job_spec(self, job_id: str, spec: Mapping[str, Any]) -> str:
        """Write ``job.json``: the spec as submitted."""
        return self.write_json(job_id, "job.json", spec)

    def write_json(self, job_id: str, name: str, obj: Any) -> str:
        """Write ``jobs/<job_id>/<name>`` atomically; returns its URL.

        Strict JSON: NaN/Infinity raise ValueError (other readers and HTTP clients reject
        them), so map them to null before writing.
        """
        data = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False).encode()
        self._write_atomic(self.path(job_id, name), data)
        return self.url_of(job_id, name)

    def write_part(
        self, job_id: str, table: pa.Table, chunk_index: int, kind: PartKind = "scenarios"
    ) -> str:
        """Write one chunk's table as ``<kind>/part-NNNNN.parquet`` (one row group),
        atomically, replacing any earlier attempt at the same chunk. Returns its URL.
        """
        buffer = io.BytesIO()
        # One row group per part: parts are already chunk-sized, and splitting them further
        # only adds metadata and read overhead.
        pq.write_table(table, buffer, row_group_size=max(1, table.num_rows))
        path = self.part_path(job_id, chunk_index, kind)
        self._write_atomic(path, buffer.getvalue())
        return str(self.fs.unstrip_protocol(path))

    def delete_part(self, job_id: str, chunk_index: int, kind: PartKind = "scenarios") -> None:
        """Remove a part if present (e.g. a chunk to be recomputed)."""
        path = self.part_path(job_id, chunk_index, kind)
        if self.fs.exists(path):
            self.fs.rm_file(path)
        self.fs.invalidate_cache(path)

    def _write_atomic(self, path: str, data: bytes) -> None:
        if not self.is_local:
            self.fs.pipe_file(path, data)
            return
        directory, name = path.rsplit("/", 1)
        os.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                # Durable before the rename: the registry marks the chunk committed next.
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_directory(directory)

    # ---- reading --------------------------------------------------------------------

    def exists(self, job_id: str, name: str) -> bool:
        """Whether ``jobs/<job_id>/<name>`` exists (``name`` may be e.g. ``scenarios``)."""
        path = self.path(job_id, *name.split("/"))
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def read_json(self, job_id: str, name: str) -> Any:
        """Parsed ``jobs/<job_id>/<name>``. Raises FileNotFoundError."""
        return json.loads(self.fs.cat_file(self.path(job_id, name)))

    def list_parts(self, job_id: str, kind: PartKind = "scenarios") -> list[int]:
        """Chunk indices with a committed part, ascending (temporary files excluded)."""
        directory = self.path(job_id, _check_kind(kind))
        # Other processes write parts: never answer from fsspec's listing cache.
        self.fs.invalidate_cache(directory)
        try:
            names = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return []
        indices = []
        for name in names:
            base = str(name).rstrip("/").rsplit("/", 1)[-1]
            match = _PART_RE.fullmatch(base)
            # Only canonical names: part_path() must find the file again from the index.
            if match and part_name(int(match.group(1))) == base:
                indices.append(int(match.group(1)))
        return sorted(indices)

    def read_part(
        self,
        job_id: str,
        chunk_index: int,
        kind: PartKind = "scenarios",
        columns: list[str] | None = None,
    ) -> pa.Table:
        """One part as written (only `columns`, if given). Raises FileNotFoundError."""
        data = self.fs.cat_file(self.part_path(job_id, chunk_index, kind))
        return pq.read_table(pa.BufferReader(data), columns=columns)

    def read_scenarios(self, job_id: str) -> pa.Table:
        """All scenario parts as one table sorted by scenario_id."""
        return self._read_all(job_id, "scenarios")

    def read_timeseries(self, job_id: str) -> pa.Table:
        """All time-series parts as one table sorted by (scenario_id, period)."""
        return self._read_all(job_id, "timeseries")

    def _read_all(self, job_id: str, kind: PartKind) -> pa.Table:
        paths = [self.part_path(job_id, i, kind) for i in self.list_parts(job_id, kind)]
        if not paths:
            return pa.table({key: pa.array([], pa.int64()) for key in _SORT_KEYS[kind]})
        # One batched fetch: s3fs downloads the parts concurrently.
        blobs = self.fs.cat(paths)
        tables = [pq.read_table(pa.BufferReader(blobs[p])) for p in paths]
        # "default" promotion unifies e.g. an all-null column in one part with its real type.
        table = pa.concat_tables(tables, promote_options="default")
        keys = [k for k in _SORT_KEYS[kind] if k in table.column_names]
        return table.sort_by([(k, "ascending") for k in keys]) if keys else table
