"""Figures and scenario discovery from a job's Parquet parts, one part at a time.

Only the columns a figure needs are read (Parquet column chunks, not whole files), and memory
follows the part: histograms and build counts are summed part by part. Scenario discovery
needs the rows together; above `max_rows` it takes every k-th scenario (k = ceil(rows /
max_rows), the same rows on every call), so it holds at most `max_rows` rows of the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from edt_compute.discovery import prim
from edt_compute.finance import TABLE_METRICS
from jobs.storage import ResultStore
from jobs.summary import OK_STATUSES, is_input

__all__ = ["DISCOVERY_MAX_ROWS", "discover", "figures", "part_columns"]

DISCOVERY_MAX_ROWS = 100_000
HISTOGRAM_BINS = 40
CDF_BINS = 200


def _open(store: ResultStore, job_id: str, k: int) -> pq.ParquetFile:
    return pq.ParquetFile(store.fs.open(store.part_path(job_id, k)))


def part_columns(store: ResultStore, job_id: str, parts: list[int]) -> pa.Schema:
    """The scenario table's schema (columns of the first part)."""
    return _open(store, job_id, parts[0]).schema_arrow


def _read(
    store: ResultStore, job_id: str, parts: list[int], columns: list[str]
) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, table of `columns`) per part, in scenario order."""
    row = 0
    for k in parts:
        f = _open(store, job_id, k)
        present = [c for c in columns if c in f.schema_arrow.names]
        yield row, f.read(columns=present)
        row += f.metadata.num_rows


def _ok_values(table: pa.Table, metric: str) -> np.ndarray:
    """The metric of the scenarios whose metrics count, finite values only."""
    status = table.column("status").to_numpy(zero_copy_only=False).astype(str)
    values = table.column(metric).to_numpy(zero_copy_only=False).astype(float)
    keep = np.isin(status, OK_STATUSES) & np.isfinite(values)
    return values[keep]


def _histograms(
    store: ResultStore, job_id: str, parts: list[int], metric: str, bins: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Histograms of `metric` with each count of equal bins over its range: two passes over
    the parts (the range, then the counts), one metric column in memory at a time."""
    lo, hi, n = math.inf, -math.inf, 0
    for _, t in _read(store, job_id, parts, ["status", metric]):
        v = _ok_values(t, metric)
        if v.size:
            lo, hi, n = min(lo, float(v.min())), max(hi, float(v.max())), n + int(v.size)
    if not n:
        return [{"count": 0, "edges": [], "counts": []} for _ in bins]
    if lo == hi:  # one value: bins around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = [np.linspace(lo, hi, b + 1) for b in bins]
    counts = [np.zeros(b, dtype=np.int64) for b in bins]
    for _, t in _read(store, job_id, parts, ["status", metric]):
        v = _ok_values(t, metric)
        for c, e in zip(counts, edges, strict=True):
            c += np.histogram(v, bins=e)[0]
    return [
        {"count": n, "edges": e.tolist(), "counts": c.tolist()}
        for c, e in zip(counts, edges, strict=True)
    ]


def _built(store: ResultStore, job_id: str, parts: list[int], names: list[str]) -> dict[str, Any]:
    projects = [c.removeprefix("build_") for c in names if c.startswith("build_")]
    if not projects:
        return {}
    columns = ["status", *(f"build_{p}" for p in projects)]
    periods: dict[str, dict[int, int]] = {p: {} for p in projects}
    ok_total = 0
    for _, t in _read(store, job_id, parts, columns):
        ok = np.isin(t.column("status").to_numpy(zero_copy_only=False).astype(str), OK_STATUSES)
        ok_total += int(ok.sum())
        for p in projects:
            col = t.column(f"build_{p}").to_numpy(zero_copy_only=False)[ok]
            for value, count in zip(*np.unique(col, return_counts=True), strict=True):
                periods[p][int(value)] = periods[p].get(int(value), 0) + int(count)
    out = {}
    for p in projects:
        built = {k: v for k, v in sorted(periods[p].items()) if k >= 0}
        share = sum(built.values()) / ok_total if ok_total else None
        out[p] = {
            "share": share,
            "periods": list(built),
            "counts": list(built.values()),
            "scenarios": ok_total,
        }
    return out


def figures(
    store: ResultStore, job_id: str, metric: str = "npv", bins: int = HISTOGRAM_BINS
) -> dict[str, Any]:
    """Histogram and cumulative distribution of `metric`, and (optimize jobs) for each project
    the share of scenarios that build it and the count of each build period."""
    parts = store.list_parts(job_id)
    if not parts:
        raise FileNotFoundError(f"job {job_id} has no committed results yet")
    names = part_columns(store, job_id, parts).names
    if metric not in names:
        raise KeyError(f"metric {metric!r} is not a column of the scenario table")
    # The S-curve: the exact share of values below each inner edge of a fine histogram (and
    # 1 at the maximum), summed part by part.
    hist, fine = _histograms(store, job_id, parts, metric, (bins, CDF_BINS))
    cum = np.cumsum(fine["counts"]) / fine["count"] if fine["count"] else np.array([])
    cdf = {"x": fine["edges"][1:], "p": cum.tolist()}
    return {
        "metric": metric,
        "histogram": hist,
        "cdf": cdf,
        "built": _built(store, job_id, parts, names),
    }


def discover(
    store: ResultStore,
    job_id: str,
    metric: str = "npv",
    threshold: float = 0.0,
    below: bool = True,
    max_rows: int = DISCOVERY_MAX_ROWS,
) -> dict[str, Any]:
    """The PRIM box of the scenarios with `metric` below (or above) `threshold`."""
    parts = store.list_parts(job_id)
    if not parts:
        raise FileNotFoundError(f"job {job_id} has no committed results yet")
    schema = part_columns(store, job_id, parts)
    if metric not in schema.names or metric not in TABLE_METRICS:
        raise KeyError(f"metric {metric!r} is not a metric of the scenario table")
    inputs = [f.name for f in schema if is_input(f.name, f.type)]
    if not inputs:
        raise KeyError("the scenario table has no varied numeric inputs to search over")
    rows = sum(_open(store, job_id, k).metadata.num_rows for k in parts)
    stride = max(1, math.ceil(rows / max_rows))
    xs, ys = [], []
    for first, t in _read(store, job_id, parts, ["scenario_id", "status", metric, *inputs]):
        take = (np.arange(first, first + t.num_rows) % stride) == 0
        status = t.column("status").to_numpy(zero_copy_only=False).astype(str)
        y = t.column(metric).to_numpy(zero_copy_only=False).astype(float)
        x = np.column_stack(
            [t.column(c).to_numpy(zero_copy_only=False).astype(float) for c in inputs]
        )
        keep = take & np.isin(status, OK_STATUSES) & np.isfinite(y) & np.isfinite(x).all(axis=1)
        xs.append(x[keep])
        ys.append(y[keep])
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    if not len(y_all):
        raise FileNotFoundError(f"job {job_id} has no scenario with a {metric} yet")
    cases = y_all < threshold if below else y_all > threshold
    result = prim(x_all, cases, inputs)
    return {
        "metric": metric,
        "threshold": threshold,
        "side": "below" if below else "above",
        "method": "prim",
        "scenarios": rows,
        "sampled": len(y_all),
        "every": stride,
        "max_rows": max_rows,
        "cases": result.cases,
        "coverage": result.coverage,
        "density": result.density,
        "mass": result.mass,
        "box": result.restricted(),
        "inputs": inputs,
        "trajectory": result.trajectory,
    }
