"""summary.json: the kernel's risk summary over a finished job's scenario table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from edt_compute import risk
from edt_compute.finance import TABLE_METRICS
from jobs.spec import PreparedJob
from jobs.status import WITH_METRICS, ScenarioStatus

_NOT_INPUTS = {
    "scenario_id",
    "status",
    "error",
    *TABLE_METRICS,
    "objective",
    "mip_gap",
    "solve_seconds",
    "scenario_name",
}


def is_input(name: str, dtype: pa.DataType) -> bool:
    """Whether a scenario-table column is a varied (numeric) input, not a result or a label."""
    if name in _NOT_INPUTS or name.startswith(("build_", "oat_")):
        return False
    return bool(pa.types.is_floating(dtype) or pa.types.is_integer(dtype))


def _inputs(table: pa.Table, ok: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if is_input(name, col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype(float)[ok]
    return out


# Scenarios whose metrics count (jobs.status.ScenarioStatus says why).
OK_STATUSES = tuple(s.value for s in WITH_METRICS)


def build_summary(
    table: pa.Table, job: PreparedJob, convergence: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The risk summary of a scenario table; `convergence` is an adaptive run's record."""
    status = table.column("status").to_numpy(zero_copy_only=False).astype(str)
    ok = np.isin(status, OK_STATUSES)
    counts = {s.value: int(np.sum(status == s.value)) for s in ScenarioStatus}
    for other in sorted(set(status) - set(counts)):  # never hide a status
        counts[str(other)] = int(np.sum(status == other))
    metrics: dict[str, np.ndarray] = {
        m: table.column(m).to_numpy(zero_copy_only=False).astype(float)[ok] for m in TABLE_METRICS
    }
    summary: dict[str, Any] = {
        "job": job.spec.name,
        "mode": job.spec.mode,
        "scenarios": int(table.num_rows),
        "status_counts": counts,
        "projects": job.projects,
    }
    # Input sensitivities are of the NPV only: one ranking per input, not one per metric.
    summary |= risk.summarize_metrics(
        metrics, TABLE_METRICS, inputs=_inputs(table, ok), sensitivity_of=("npv",)
    )
    summary["currency"] = job.model.finance.currency
    if job.spec.mode in ("optimize", "decide") and job.projects:
        built = np.zeros(int(ok.sum()), dtype=bool)
        for p in job.projects:
            if f"build_{p}" in table.column_names:
                built |= table.column(f"build_{p}").to_numpy(zero_copy_only=False)[ok] >= 0
        summary["share_built"] = float(built.mean()) if ok.any() else None
    if "oat_parameter" in table.column_names:
        summary["tornado"] = _tornado(table, ok)
    if convergence is not None:
        summary["convergence"] = convergence
    return risk.json_ready(summary)


def _tornado(table: pa.Table, ok: np.ndarray) -> list[dict[str, Any]]:
    param = table.column("oat_parameter").to_numpy(zero_copy_only=False).astype(str)
    level = table.column("oat_level").to_numpy(zero_copy_only=False).astype(str)
    npv = table.column("npv").to_numpy(zero_copy_only=False).astype(float)
    base_rows = np.flatnonzero((level == "base") & ok)
    if not len(base_rows):
        return []
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for i in np.flatnonzero(ok & (level != "base")):
        (low if level[i] == "low" else high)[param[i]] = float(npv[i])
    both = sorted(set(low) & set(high))
    return risk.tornado(
        float(npv[base_rows[0]]), {p: low[p] for p in both}, {p: high[p] for p in both}
    )
