"""A job's scenario table served from storage, part by part: memory follows the part, never
the job (a page reads only the parts it covers; a download streams one part at a time)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from edt_compute.risk import json_ready
from jobs.storage import ResultStore


def _schemas(store: ResultStore, job_id: str, parts: list[int]) -> list[pa.Schema]:
    out = []
    for k in parts:
        with store.fs.open(store.part_path(job_id, k)) as f:
            out.append(pq.read_schema(f))
    return out


def unified_schema(store: ResultStore, job_id: str, parts: list[int]) -> pa.Schema:
    """One schema for all parts (an all-null column in one part takes the others' type)."""
    return pa.unify_schemas(_schemas(store, job_id, parts), promote_options="default")


def columns_of(store: ResultStore, job_id: str, parts: list[int]) -> list[str]:
    return list(_schemas(store, job_id, parts[:1])[0].names) if parts else []


def _part_rows(store: ResultStore, job_id: str, k: int) -> int:
    with store.fs.open(store.part_path(job_id, k)) as f:
        return int(pq.ParquetFile(f).metadata.num_rows)


def read_page(
    store: ResultStore,
    job_id: str,
    parts: list[int],
    offset: int,
    limit: int,
    columns: list[str] | None,
) -> list[dict[str, Any]]:
    """Rows offset..offset+limit in scenario order, reading only the parts that hold them."""
    rows: list[dict[str, Any]] = []
    seen = 0
    for k in parts:
        if len(rows) >= limit:
            break
        n = _part_rows(store, job_id, k)
        if seen + n <= offset:
            seen += n
            continue
        table = store.read_part(job_id, k, columns=columns)
        start = max(0, offset - seen)
        piece = table.slice(start, limit - len(rows))
        rows += [json_ready(r) for r in piece.to_pylist()]
        seen += n
    return rows


class _Sink(io.RawIOBase):
    """A write-only file whose bytes are handed out (and forgotten) after each part."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.chunks.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def stream(store: ResultStore, job_id: str, parts: list[int], fmt: str) -> Iterator[bytes]:
    """The whole table as Parquet (one row group per part) or CSV (one header), part by part."""
    schema = unified_schema(store, job_id, parts)
    sink = _Sink()
    writer: pq.ParquetWriter | pacsv.CSVWriter = (
        pq.ParquetWriter(sink, schema) if fmt == "parquet" else pacsv.CSVWriter(sink, schema)
    )
    try:
        for k in parts:
            table = store.read_part(job_id, k).select(schema.names)
            table = table.cast(schema) if table.schema != schema else table
            writer.write_table(table)
            if data := sink.take():
                yield data
    finally:
        writer.close()
    if data := sink.take():
        yield data
