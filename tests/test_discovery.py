"""Scenario discovery (PRIM) and the dashboard's figures, on tables whose answer is known by
construction: NPV < 0 exactly when the gas price multiplier > 1.3 and the methanol price
multiplier < 0.9, with two inputs that play no part."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from edt_compute.discovery import prim
from jobs import insights
from jobs.storage import ResultStore

GAS, MEOH = "markets.gas_supply.price", "markets.methanol_sales.price"
JOB = "job-20260101000000-abcdef"


def known_region(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    gas, meoh = rng.uniform(0.5, 2.0, n), rng.uniform(0.6, 1.4, n)
    loss = (gas > 1.3) & (meoh < 0.9)
    return {
        GAS: gas,
        MEOH: meoh,
        "finance.discount_rate": rng.uniform(0.1, 0.14, n),
        "units.reformer.availability": rng.uniform(0.85, 0.95, n),
        "npv": np.where(loss, -rng.uniform(1, 50, n), rng.uniform(0, 80, n)),
    }


def write_job(
    store: ResultStore, cols: dict[str, np.ndarray], chunk: int, job_id: str = JOB
) -> None:
    n = len(cols["npv"])
    status = np.array(["ok"] * n, dtype=object)
    status[5] = "error"  # a failed scenario: no metrics, never a case nor a point
    for k, start in enumerate(range(0, n, chunk)):
        sl = slice(start, start + chunk)
        table = pa.table(
            {
                "scenario_id": np.arange(n)[sl],
                "status": status[sl],
                "error": [None] * len(status[sl]),
                **{name: v[sl] for name, v in cols.items()},
                "irr": np.full(len(status[sl]), np.nan),
            }
        )
        store.write_part(job_id, table, k)


def check_box(box: list[dict[str, float | None]]) -> None:
    bounds = {b["input"]: (b["lower"], b["upper"]) for b in box}
    assert set(bounds) == {GAS, MEOH}, bounds
    gas_low, gas_high = bounds[GAS]
    meoh_low, meoh_high = bounds[MEOH]
    assert gas_high is None and meoh_low is None
    assert gas_low == pytest.approx(1.3, abs=0.05) and meoh_high == pytest.approx(0.9, abs=0.05)


def test_prim_finds_the_loss_region_with_high_density_and_coverage() -> None:
    cols = known_region(4000)
    names = [GAS, MEOH, "finance.discount_rate", "units.reformer.availability"]
    x = np.column_stack([cols[n] for n in names])
    result = prim(x, cols["npv"] < 0, names)
    assert result.density >= 0.9 and result.coverage >= 0.8
    check_box(result.restricted())
    # The figures are those of the box, counted here independently.
    inside = np.ones(len(x), dtype=bool)
    for b in result.restricted():
        j = names.index(b["input"])
        inside &= (x[:, j] >= (b["lower"] or -np.inf)) & (x[:, j] <= (b["upper"] or np.inf))
    loss = cols["npv"] < 0
    assert result.density == (inside & loss).sum() / inside.sum()
    assert result.coverage == (inside & loss).sum() / loss.sum()
    assert result.mass == inside.mean()


def test_prim_refuses_bad_input_naming_it() -> None:
    with pytest.raises(ValueError, match="x has NaN"):
        prim(np.array([[np.nan], [1.0]]), np.array([True, False]), ["a"])
    with pytest.raises(ValueError, match="alpha"):
        prim(np.ones((3, 1)), np.ones(3, dtype=bool), ["a"], alpha=0.9)
    with pytest.raises(ValueError, match="y must have one value per row"):
        prim(np.ones((3, 1)), np.ones(2, dtype=bool), ["a"])


def test_discovery_over_parquet_parts_finds_the_region(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    cols = known_region(3000)
    write_job(store, cols, chunk=700)
    out = insights.discover(store, JOB)
    assert out["density"] >= 0.9 and out["coverage"] >= 0.8
    check_box(out["box"])
    ok = np.arange(3000) != 5
    assert out["scenarios"] == 3000 and out["sampled"] == ok.sum() and out["every"] == 1
    assert out["cases"] == int((cols["npv"][ok] < 0).sum())
    assert out["inputs"] == [GAS, MEOH, "finance.discount_rate", "units.reformer.availability"]
    # Any threshold, either side: NPV above 0 is the complement region.
    above = insights.discover(store, JOB, threshold=0.0, below=False)
    assert above["cases"] == int((cols["npv"][ok] > 0).sum()) and above["density"] >= 0.9


def test_discovery_above_its_row_bound_uses_every_kth_scenario(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    cols = known_region(3000)
    write_job(store, cols, chunk=700)
    out = insights.discover(store, JOB, max_rows=1000)
    taken = np.arange(3000) % 3 == 0
    taken[5] = False
    assert out["every"] == 3 and out["sampled"] == taken.sum() <= 1000
    assert out["cases"] == int((cols["npv"][taken] < 0).sum())
    assert out["density"] >= 0.9 and out["coverage"] >= 0.8


def test_figures_sum_the_parts_to_the_whole_tables_histogram(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    cols = known_region(2500)
    write_job(store, cols, chunk=600)
    fig = insights.figures(store, JOB)
    npv = np.delete(cols["npv"], 5)
    counts, edges = np.histogram(npv, bins=insights.HISTOGRAM_BINS)
    assert fig["histogram"]["counts"] == counts.tolist()
    assert np.allclose(fig["histogram"]["edges"], edges, rtol=0, atol=1e-12)
    x, p = np.array(fig["cdf"]["x"]), np.array(fig["cdf"]["p"])
    assert len(x) == insights.CDF_BINS and p[-1] == 1.0
    assert np.array_equal(p[:-1], [(npv < v).mean() for v in x[:-1]])
    assert fig["built"] == {}


def test_a_job_without_parts_or_with_an_unknown_metric_is_refused(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no committed results"):
        insights.discover(store, JOB)
    write_job(store, known_region(200), chunk=100)
    with pytest.raises(KeyError, match="'scenario_id' is not a metric"):
        insights.discover(store, JOB, metric="scenario_id")


# ---- over HTTP and on the command line -------------------------------------------------


def test_discover_over_http_and_the_cli_find_the_region_of_a_job(tmp_path: Path) -> None:
    import httpx

    from api.app import create_app
    from api.settings import Settings
    from cluster.supervisor import JobRunner
    from jobs.registry import Registry
    from jobs.spec import prepare_job
    from tests.api_support import auth, small_mc, thread_server, write_tokens

    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    store = ResultStore(str(tmp_path / "results"))
    job_id = JobRunner(Registry(registry), store).submit(prepare_job(small_mc()), tenant="acme").id
    write_job(store, known_region(3000), chunk=1000, job_id=job_id)
    s = Settings(
        registry=registry,
        storage=store.url,
        tokens_file=str(write_tokens(tmp_path / "tokens.yaml")),
        scheduler=False,
    )
    with thread_server(create_app(s)) as url:
        base = f"{url}/v1/jobs/{job_id}"
        r = httpx.get(f"{base}/discover", params={"below": 0}, headers=auth("acme-viewer"))
        assert r.status_code == 200, r.text
        assert r.json()["density"] >= 0.9 and r.json()["coverage"] >= 0.8
        check_box(r.json()["box"])
        both = httpx.get(f"{base}/discover?below=0&above=1", headers=auth("acme-viewer"))
        assert (
            both.status_code == 422 and "either below or above" in both.json()["error"]["message"]
        )
        bad = httpx.get(f"{base}/discover?metric=scenario_id", headers=auth("acme-viewer"))
        assert (
            bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "query.metric"
        )
        report = httpx.get(f"{base}/report", headers=auth("acme-viewer"))
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "<script src" not in report.text and "<link" not in report.text
        figures = httpx.get(f"{base}/figures", headers=auth("acme-viewer")).json()
        assert sum(figures["histogram"]["counts"]) == 2999
        remote = ["--api", url, "--token", "acme-viewer"]
        saved = edt(tmp_path, registry, "report", job_id, "-o", str(tmp_path / "r.html"), *remote)
        assert saved.returncode == 0, saved.stderr
        assert (tmp_path / "r.html").read_text() == report.text
        over_http = edt(tmp_path, registry, "discover", job_id, *remote)
        assert json.loads(over_http.stdout) == r.json()
    out = edt(tmp_path, registry, "discover", job_id, "--metric", "npv", "--below", "0")
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert cli == r.json()


def edt(home: Path, registry: str, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.api_support import BIN

    return subprocess.run(
        [str(BIN / "edt"), *args],
        env={"PATH": str(BIN), "HOME": str(home), "EDT_REGISTRY": registry},
        capture_output=True,
        text=True,
        timeout=120,
    )
