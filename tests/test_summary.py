"""summary.json from a scenario table: which rows count, the share of plans that build, the
tornado of a one-at-a-time job, the share of scenarios without an IRR (hand-computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from edt_compute.finance import TABLE_METRICS
from jobs.evaluate import evaluate_chunk
from jobs.spec import load_job
from jobs.summary import build_summary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "jobs"


def _optimize_table() -> pa.Table:
    status = ["ok", "time_limit", "infeasible", "error", "ok", "ok"]
    npv = [10.0, -4.0, np.nan, np.nan, 2.0, -1.0]
    irr = [0.12, np.nan, np.nan, np.nan, 0.05, np.nan]  # no sign change: no IRR
    built = [3, -1, -1, -1, 0, -1]
    price = [1.0, 0.7, 0.9, 1.1, 1.3, 0.8]
    cols: dict[str, object] = {
        "scenario_id": np.arange(6, dtype=np.int64),
        "status": status,
        "error": [None, None, "infeasible", "boom", None, None],
        "markets.gas_supply.price": price,
    }
    for m in TABLE_METRICS:
        cols[m] = npv if m in ("npv", "enterprise_npv") else irr if m == "irr" else npv
    cols["build_methanol_debottleneck"] = np.array(built, dtype=np.int64)
    return pa.table(cols)


def test_time_limit_rows_count_toward_the_metrics_and_failed_rows_do_not() -> None:
    job = load_job(EXAMPLES / "methanol_optimize.yaml")
    s = build_summary(_optimize_table(), job)
    counted = np.array([10.0, -4.0, 2.0, -1.0])  # ok and time_limit rows
    assert s["status_counts"] == {"ok": 3, "infeasible": 1, "time_limit": 1, "error": 1}
    assert s["npv"]["count"] == 4
    assert s["npv"]["mean"] == pytest.approx(counted.mean())
    assert s["npv"]["prob_negative"] == pytest.approx(0.5)


def test_share_built_is_of_the_plans_that_count() -> None:
    job = load_job(EXAMPLES / "methanol_optimize.yaml")
    s = build_summary(_optimize_table(), job)
    assert s["share_built"] == pytest.approx(2 / 4)  # rows 0 and 4 of ok, time_limit, ok, ok


def test_share_undefined_is_the_share_of_counted_scenarios_without_an_irr() -> None:
    job = load_job(EXAMPLES / "methanol_optimize.yaml")
    s = build_summary(_optimize_table(), job)
    assert s["irr"]["share_undefined"] == pytest.approx(2 / 4)
    assert s["irr"]["count"] == 2 and s["irr"]["mean"] == pytest.approx(0.085)


def test_npv_rank_correlation_with_an_input_is_scipys() -> None:
    job = load_job(EXAMPLES / "methanol_optimize.yaml")
    s = build_summary(_optimize_table(), job)
    rho = stats.spearmanr([1.0, 0.7, 1.3, 0.8], [10.0, -4.0, 2.0, -1.0]).statistic
    assert s["npv"]["spearman"]["markets.gas_supply.price"] == pytest.approx(rho)


def test_tornado_of_a_one_at_a_time_job_has_the_swings_of_its_rows() -> None:
    job = load_job(EXAMPLES / "methanol_tornado.yaml")
    table = evaluate_chunk(job, np.arange(job.total)).scenarios
    s = build_summary(table, job)
    df = table.to_pandas()
    base = float(df.loc[df.oat_level == "base", "npv"].iloc[0])
    expected = {}
    for p, rows in df[df.oat_level != "base"].groupby("oat_parameter"):
        low = float(rows.loc[rows.oat_level == "low", "npv"].iloc[0])
        high = float(rows.loc[rows.oat_level == "high", "npv"].iloc[0])
        expected[p] = (low, high)
    bars = s["tornado"]
    assert {b["parameter"] for b in bars} == set(job.spec.scenarios.parameters)
    assert [b["swing"] for b in bars] == sorted((b["swing"] for b in bars), reverse=True)
    for b in bars:
        low, high = expected[b["parameter"]]
        assert (b["low"], b["high"]) == pytest.approx((low, high))
        assert b["swing"] == pytest.approx(abs(high - low))
        assert b["low_delta"] == pytest.approx(low - base)
