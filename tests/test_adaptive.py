"""Adaptive Monte Carlo jobs: stop when the answer is precise enough, the same n everywhere.

The model is one plant that buys gas at 2 and sells 100 t a year of product at a lognormal
price of mean 10, with no tax, projects or working capital, so each scenario's NPV is the
annuity of 100 (price - 2) and the true mean NPV is numpy-financial's NPV at price 10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy_financial as npf
import pyarrow as pa
import pytest

from cluster.supervisor import JobRunner
from jobs.adaptive import PrefixMonitor, evaluate_until, trim_to_prefix
from jobs.evaluate import evaluate_chunk
from jobs.registry import Registry
from jobs.spec import PreparedJob, prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.support import assert_identical

RATE, YEARS, VOLUME, GAS, PRICE = 0.1, 8, 100.0, 2.0, 10.0
TRUE_MEAN = float(npf.npv(RATE, [VOLUME * (PRICE - GAS)] * YEARS))
SALES = "markets.product_sales.price"

MODEL = {
    "name": "closed_form",
    "resources": [{"name": "gas"}, {"name": "product"}],
    "units": [
        {
            "name": "plant",
            "inputs": {"gas": 1.0},
            "outputs": {"product": 1.0},
            "capacity": VOLUME,
        }
    ],
    "markets": [
        {"name": "gas_supply", "resource": "gas", "side": "buy", "price": GAS},
        {"name": "product_sales", "resource": "product", "side": "sell", "price": PRICE},
    ],
    "finance": {"horizon": YEARS, "period": "year", "discount_rate": RATE},
}


def job(method: str = "mc", seed: int = 5, **until: Any) -> PreparedJob:
    rule: dict[str, Any] = {"statistic": "mean", "half_width": 100.0, "max_samples": 16 * 1280}
    rule.update(until)
    return prepare_job(
        {
            "name": "adaptive-test",
            "model": MODEL,
            "seed": seed,
            "scenarios": {
                "kind": "monte_carlo",
                "method": method,
                "parameters": {
                    SALES: {"dist": "lognormal", "mean": 1.0, "std": 0.3, "mode": "multiplier"}
                },
                "until": rule,
            },
        }
    )


def column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def test_the_model_npv_is_the_closed_form_of_its_price() -> None:
    table = evaluate_chunk(job(), np.arange(20)).scenarios
    expected = [npf.npv(RATE, [VOLUME * (p - GAS)] * YEARS) for p in column(table, SALES)]
    np.testing.assert_allclose(column(table, "npv"), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
def test_stopped_interval_contains_the_true_mean_and_meets_the_target(method: str) -> None:
    result = evaluate_until(job(method), chunk_size=500)
    mon = result.monitor
    (final,) = mon.latest
    assert mon.met and final["half_width"] <= 100.0
    assert final["lower"] <= TRUE_MEAN <= final["upper"]
    # It stopped at the first checkpoint that met the target, on exactly the prefix it keeps.
    assert all(not row["met"] for row in mon.history[:-1])
    assert result.scenarios.num_rows == mon.stop_n == final["n"]
    assert np.array_equal(column(result.scenarios, "scenario_id"), np.arange(final["n"]))
    assert final["estimate"] == pytest.approx(column(result.scenarios, "npv").mean(), rel=1e-14)


def test_randomised_qmc_needs_far_fewer_samples_than_plain_monte_carlo() -> None:
    plain = evaluate_until(job("mc", half_width=30.0), chunk_size=2000).monitor
    rqmc = evaluate_until(job("sobol", half_width=30.0), chunk_size=2000).monitor
    assert plain.met and rqmc.met
    # Plain MC needs about (1.96 sd / 30)^2 with sd = 0.3 * 10 * 100 * annuity factor.
    sd = 0.3 * PRICE * VOLUME * TRUE_MEAN / (VOLUME * (PRICE - GAS))
    assert plain.stop_n == pytest.approx((1.96 * sd / 30.0) ** 2, rel=0.15)
    assert rqmc.stop_n is not None and rqmc.stop_n * 10 < plain.stop_n


@pytest.mark.parametrize("method", ["mc", "sobol"])
def test_stopping_n_and_rows_do_not_depend_on_chunk_size(method: str) -> None:
    spec = job(method, half_width=60.0)
    runs = [evaluate_until(spec, chunk_size=size) for size in (7, 64, 1000)]
    assert len({r.monitor.stop_n for r in runs}) == 1
    for other in runs[1:]:
        assert_identical(runs[0].scenarios, other.scenarios)
        assert other.monitor.history == runs[0].monitor.history


def test_commit_order_does_not_change_where_it_stops() -> None:
    spec, size = job(half_width=60.0), 50
    reference = evaluate_until(spec, chunk_size=size).monitor
    parts = {
        k: evaluate_chunk(spec, np.arange(k * size, (k + 1) * size)).scenarios for k in range(80)
    }
    monitor = PrefixMonitor(spec, size, lambda k, columns: parts[k].select(columns))
    for k in np.random.default_rng(0).permutation(80):
        monitor.commit(int(k))
        monitor.advance()
    assert monitor.stop_n == reference.stop_n and monitor.history == reference.history


def test_max_samples_is_respected_when_the_target_is_out_of_reach() -> None:
    result = evaluate_until(job(half_width=1.0, max_samples=600), chunk_size=64)
    report = result.monitor.report()
    assert result.scenarios.num_rows == 600 and report["n"] == 600
    assert not report["met"] and report["stopped_by"] == "max_samples"
    assert report["history"][-1]["n"] == 600


def test_a_target_met_at_min_samples_stops_there() -> None:
    result = evaluate_until(job(half_width=1.0e4, min_samples=100), chunk_size=64)
    assert result.monitor.stop_n == 100 and result.scenarios.num_rows == 100
    assert [row["n"] for row in result.monitor.history] == [100]


def test_trim_keeps_exactly_the_prefix_and_counts_what_it_discards(tmp_path: Path) -> None:
    store, size = ResultStore(str(tmp_path)), 100
    spec = job()
    records = []
    for k in range(4):
        result = evaluate_chunk(spec, np.arange(k * size, (k + 1) * size))
        store.write_part("j1", result.scenarios, k)
        store.write_part("j1", result.scenarios.select(["scenario_id"]), k, "timeseries")
        records.append(type("Chunk", (), {"rows": size})())
    for _ in range(2):  # idempotent: an interrupted finish runs it again
        assert trim_to_prefix(store, "j1", 250, size, records) == 150
        assert store.list_parts("j1") == [0, 1, 2] == store.list_parts("j1", "timeseries")
        ids = column(store.read_scenarios("j1"), "scenario_id")
        assert np.array_equal(ids, np.arange(250))
        assert np.array_equal(column(store.read_timeseries("j1"), "scenario_id"), np.arange(250))


# --- on Ray ---------------------------------------------------------------------------------


def runner(tmp_path: Path, name: str, workers: int) -> JobRunner:
    return JobRunner(
        Registry(f"sqlite:///{tmp_path / 'registry.db'}"),
        ResultStore(str(tmp_path / name)),
        workers=workers,
    )


def run(tmp_path: Path, spec: PreparedJob, name: str, workers: int, chunk: int) -> Any:
    r = runner(tmp_path, name, workers)
    record = r.submit(spec, chunk_size=chunk)
    final = r.run(record.id)
    assert final.status == JobStatus.SUCCEEDED
    summary = r.store.read_json(record.id, "summary.json")
    return r, record.id, summary


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_same_stop_and_table_on_1_worker_chunk_7_and_2_workers_chunk_64(tmp_path: Path) -> None:
    spec = job()
    one, id1, s1 = run(tmp_path, spec, "one", 1, 7)
    two, id2, s2 = run(tmp_path, spec, "two", 2, 64)
    n = s1["convergence"]["n"]
    assert (
        s2["convergence"]["n"] == n and s1["convergence"]["history"] == s2["convergence"]["history"]
    )
    table = one.store.read_scenarios(id1)
    assert_identical(table, two.store.read_scenarios(id2))
    assert_identical(table, evaluate_until(spec, chunk_size=300).scenarios)
    # The summary describes exactly the prefix that met the rule.
    (final,) = [row for row in s1["convergence"]["history"] if row["n"] == n]
    assert s1["scenarios"] == s1["npv"]["count"] == table.num_rows == n
    assert s1["npv"]["mean"] == pytest.approx(final["estimate"], rel=1e-14)
    assert final["lower"] <= TRUE_MEAN <= final["upper"] and final["half_width"] <= 100.0
    # Nothing beyond n stays in the dataset; the registry and manifest say n.
    assert max(two.store.list_parts(id2)) == (n - 1) // 64
    manifest = two.store.read_json(id2, "manifest.json")
    assert manifest["total_scenarios"] == n == sum(c["rows"] for c in manifest["chunks"])
    assert (
        manifest["adaptive"]["extra_scenarios_discarded"]
        == s2["convergence"]["extra_scenarios_discarded"]
    )
    assert two.registry.get(id2).scenarios_done == n
    assert two.store.read_json(id2, "convergence.json")["history"] == s2["convergence"]["history"]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_max_samples_and_min_samples_bound_a_run_on_ray(tmp_path: Path) -> None:
    r, job_id, capped = run(tmp_path, job(half_width=1.0, max_samples=300), "cap", 2, 64)
    assert capped["convergence"]["stopped_by"] == "max_samples" and capped["scenarios"] == 300
    assert r.store.read_scenarios(job_id).num_rows == 300
    r, job_id, early = run(tmp_path, job(half_width=1e4, min_samples=128), "min", 2, 50)
    assert early["convergence"]["n"] == 128 and early["convergence"]["stopped_by"] == "targets"
    assert r.store.read_part(job_id, 2).num_rows == 28  # the boundary part, trimmed


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_resume_rederives_the_stop_from_committed_parts(tmp_path: Path) -> None:
    spec, size = job(half_width=60.0), 100
    reference = evaluate_until(spec, chunk_size=size)
    assert reference.monitor.stop_n is not None
    last = (reference.monitor.stop_n - 1) // size
    r = runner(tmp_path, "resume", 2)
    record = r.submit(spec, chunk_size=size)
    # A driver that died after committing every chunk up to one past the stop, untrimmed:
    # chunk 1 is missing, so the rule has not been able to stop yet.
    for k in [0, *range(2, last + 2)]:
        part = evaluate_chunk(spec, np.arange(k * size, (k + 1) * size)).scenarios
        path = r.store.write_part(record.id, part, k)
        r.registry.record_chunk(record.id, k, part.num_rows, "earlier-driver", path)
    assert r.run(record.id).status == JobStatus.SUCCEEDED
    assert_identical(r.store.read_scenarios(record.id), reference.scenarios)
    summary = r.store.read_json(record.id, "summary.json")
    assert summary["convergence"]["history"] == reference.monitor.history
    # Committed parts were reused: only chunk 1 of the final dataset was computed again.
    manifest = r.store.read_json(record.id, "manifest.json")
    nodes = [c["node"] for c in manifest["chunks"]]
    assert len(nodes) == last + 1 and nodes[1] != "earlier-driver"
    assert set(nodes[:1] + nodes[2:]) == {"earlier-driver"}
