"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
uvicorn server over finished jobs (Monte Carlo, optimize, adaptive, one-at-a-time tornado). The figures read
from the page are checked against the Parquet data read here with pandas; the saved report
opens from file:// with the network cut off and shows the same figures."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from api.app import create_app
from api.settings import Settings
from cluster.supervisor import JobRunner
from jobs.registry import Registry
from jobs.spec import prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.api_support import BIN, ROOT, auth, small_mc, thread_server, write_tokens
from tests.dashboard_jobs import dashboard_jobs

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"
    ),
]
CHARTS = "[...document.querySelectorAll('.js-plotly-plot')].map(d => d.id)"


class Served:
    def __init__(self, url: str, ids: dict[str, str], root: Path) -> None:
        self.url, self.ids, self.root = url, ids, root
        self.registry_url = f"sqlite:///{root / 'registry.db'}"

    def table(self, name: str) -> pd.DataFrame:
        path = self.root / "results" / "jobs" / self.ids[name] / "scenarios"
        return pd.read_parquet(path)

    def read(self, name: str, file: str) -> Any:
        return json.loads((self.root / "results" / "jobs" / self.ids[name] / file).read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, ray_local: None) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dashboard")
    ARTIFACTS.mkdir(exist_ok=True)
    ids = dashboard_jobs(root)
    s = Settings(
        registry=f"sqlite:///{root / 'registry.db'}",
        storage=str(root / "results"),
        tokens_file=str(write_tokens(root / "tokens.yaml")),
        scheduler=False,
    )
    with thread_server(create_app(s)) as url:
        yield Served(url, ids, root)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh tab whose every request is logged; none may leave the server."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    # HTTP answers also show in the console (a refused token, a summary not there yet): they
    # are checked through the request log. Anything else (a CSP violation) fails.
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    responses: list[tuple[str, int]] = []
    context.on("response", lambda r: responses.append((r.url, r.status)))
    tab.responses = responses
    yield tab
    context.close()
    assert requests and all(u.startswith(served.url + "/") for u in requests), requests
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []


def sign_in(page: Any, url: str, token: str = "acme-viewer") -> None:
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#token-form button")
    page.wait_for_selector("#jobs")


def open_job(page: Any, job_id: str) -> None:
    page.evaluate(f"location.hash = '#job/{job_id}'")
    page.wait_for_selector("body[data-ready^='succeeded']")


def trace(page: Any, chart: str, i: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = page.evaluate(
        f"(() => {{ const t = document.getElementById('{chart}').data[{i}];"
        " return {x: Array.from(t.x), y: Array.from(t.y), error_y: t.error_y || null}; })()"
    )
    return data


def ok_npv(table: pd.DataFrame) -> np.ndarray:
    ok = table[table["status"] == "ok"]
    return ok["npv"].to_numpy(dtype=float)


def check_distribution(page: Any, table: pd.DataFrame, summary: dict[str, Any]) -> None:
    npv = ok_npv(table)
    counts, edges = np.histogram(npv, bins=40)
    bars = trace(page, "chart-histogram")
    assert bars["y"] == counts.tolist() and sum(bars["y"]) == len(npv)
    assert np.allclose(bars["x"], (edges[:-1] + edges[1:]) / 2, rtol=1e-12)
    curve = trace(page, "chart-scurve")
    x, p = np.array(curve["x"]), np.array(curve["y"])
    assert len(x) == 200 and p[-1] == 1.0
    assert np.array_equal(p[:-1], [(npv < v).mean() for v in x[:-1]])
    marker = trace(page, "chart-scurve", 1)
    assert marker["x"] == [0] and marker["y"] == [pytest.approx((npv < 0).mean(), abs=0)]
    shown = page.inner_text("tr[data-key='npv.prob_negative'] td")
    assert shown == f"{100 * (npv < 0).mean():.1f} %"
    assert summary["npv"]["prob_negative"] == (npv < 0).mean()


def test_no_token_no_data(page: Any, served: Served) -> None:
    csp = httpx.get(served.url + "/").headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp and "unsafe-eval" not in csp
    page.goto(served.url + "/")
    page.wait_for_selector("#token-form")
    assert page.query_selector("#jobs") is None
    assert served.ids["mc"] not in page.content()
    assert httpx.get(f"{served.url}/v1/jobs").status_code == 401
    page.fill("#token", "not-a-token")
    page.click("#token-form button")
    page.wait_for_selector("#gate-error")
    assert page.query_selector("#jobs") is None
    data = [(u, status) for u, status in page.responses if "/v1/" in u]
    assert data and all(status == 401 for _, status in data), data
    page.screenshot(path=str(ARTIFACTS / "token-gate.png"))


def test_jobs_list_shows_every_job_with_status_progress_and_owner(
    page: Any, served: Served
) -> None:
    sign_in(page, served.url)
    rows = page.eval_on_selector_all("#jobs tbody tr", "rs => rs.map(r => r.dataset.job)")
    assert sorted(rows) == sorted(served.ids.values())
    text = page.inner_text(f"tr[data-job='{served.ids['optimize']}']")
    assert "succeeded" in text and "100.0 %" in text and "owner=planning" in text
    page.select_option("#filter-status", "failed")
    page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 0")
    page.select_option("#filter-status", "")
    page.fill("#filter-label", "owner=planning")
    page.press("#filter-label", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 1")
    page.screenshot(path=str(ARTIFACTS / "jobs-list.png"), full_page=True)


def test_monte_carlo_job_page_draws_the_parquet_data(page: Any, served: Served) -> None:
    sign_in(page, served.url)
    open_job(page, served.ids["mc"])
    table, summary = served.table("mc"), served.read("mc", "summary.json")
    check_distribution(page, table, summary)
    # Monte Carlo: the tornado is the rank correlation of each input with the NPV.
    bars = trace(page, "chart-tornado")
    rho = {k: v for k, v in summary["npv"]["spearman"].items() if v is not None}
    assert dict(zip(bars["y"], bars["x"], strict=True)) == rho and len(rho) == 6
    box = page.inner_text("#discovery-figures")
    assert "coverage" in box and "density" in box
    assert page.eval_on_selector_all("#downloads a", "as => as.length") == 4
    page.screenshot(path=str(ARTIFACTS / "job-page-mc.png"), full_page=True)


def test_optimize_job_page_shows_build_shares_and_periods(page: Any, served: Served) -> None:
    sign_in(page, served.url)
    open_job(page, served.ids["optimize"])
    table = served.table("optimize")
    check_distribution(page, table, served.read("optimize", "summary.json"))
    ok = table[table["status"] == "ok"]
    build = ok["build_methanol_debottleneck"]
    assert len(ok) == 8
    share = trace(page, "chart-built-share")
    assert share["x"] == ["methanol_debottleneck"] and share["y"] == [(build >= 0).mean()]
    when = trace(page, "chart-built-when")
    periods = build[build >= 0].value_counts().sort_index()
    assert when["x"] == periods.index.tolist() and when["y"] == periods.tolist()
    page.screenshot(path=str(ARTIFACTS / "job-page-optimize.png"), full_page=True)


def test_adaptive_job_page_shows_each_targets_convergence(page: Any, served: Served) -> None:
    sign_in(page, served.url)
    open_job(page, served.ids["adaptive"])
    conv = served.read("adaptive", "convergence.json")
    check_distribution(page, served.table("adaptive"), served.read("adaptive", "summary.json"))
    assert len(conv["targets"]) == 2 and page.evaluate(CHARTS).count("chart-convergence-1") == 1
    for i, target in enumerate(conv["targets"]):
        rows = [
            r
            for r in conv["history"]
            if (r["metric"], r["statistic"]) == (target["metric"], target["statistic"])
        ]
        drawn = trace(page, f"chart-convergence-{i}")
        assert drawn["x"] == [r["n"] for r in rows] and drawn["y"] == [r["estimate"] for r in rows]
        upper = np.array(drawn["error_y"]["array"], dtype=float)
        assert np.allclose(upper, [r["upper"] - r["estimate"] for r in rows])
    page.screenshot(path=str(ARTIFACTS / "job-page-adaptive.png"), full_page=True)


def test_one_at_a_time_job_page_draws_each_swing_around_the_base(page: Any, served: Served) -> None:
    sign_in(page, served.url)
    open_job(page, served.ids["tornado"])
    t = served.table("tornado")
    base = float(t.loc[t["oat_level"] == "base", "npv"].iloc[0])
    at = t.set_index(["oat_parameter", "oat_level"])["npv"]
    low, high = trace(page, "chart-tornado", 0), trace(page, "chart-tornado", 1)
    assert low["y"] == high["y"] and len(low["y"]) == 6
    for name, lo, hi in zip(low["y"], low["x"], high["x"], strict=True):
        assert lo == pytest.approx(at[(name, "low")] - base, rel=1e-12)
        assert hi == pytest.approx(at[(name, "high")] - base, rel=1e-12)
    swings = [abs(h - lo) for lo, h in zip(low["x"], high["x"], strict=True)]
    assert swings == sorted(swings)  # widest at the top: plotly draws the first bar lowest
    page.screenshot(path=str(ARTIFACTS / "job-page-tornado.png"), full_page=True)


def test_discovery_with_a_user_threshold_asks_the_server(page: Any, served: Served) -> None:
    sign_in(page, served.url)
    open_job(page, served.ids["mc"])
    page.fill("#discover-threshold", "-10")
    page.evaluate("document.body.dataset.ready = ''")
    page.click("#discover-form button")
    page.wait_for_selector("body[data-ready^='succeeded']")
    npv = ok_npv(served.table("mc"))
    assert f"({(npv < -10).sum()} of {len(npv)} scenarios are cases" in page.inner_text(
        "#discovery-figures"
    )


def test_the_report_opens_offline_and_shows_the_same_figures(
    browser: Any, page: Any, served: Served, tmp_path: Path
) -> None:
    job_id = served.ids["mc"]
    sign_in(page, served.url)
    open_job(page, job_id)
    live = {c: trace(page, c) for c in page.evaluate(CHARTS)}
    summary = page.inner_text("#summary")
    answer = httpx.get(f"{served.url}/v1/jobs/{job_id}/report", headers=auth("acme-viewer"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    (tmp_path / "api.html").write_text(answer.text, encoding="utf-8")
    done = subprocess.run(
        [str(BIN / "edt"), "report", job_id, "-o", str(tmp_path / "cli.html")],
        env={"PATH": str(BIN), "HOME": str(tmp_path), "EDT_REGISTRY": served.registry_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("api.html", "cli.html"):
        uri = (tmp_path / name).as_uri()
        offline = browser.new_context(offline=True)
        seen: list[str] = []
        offline.on("request", lambda r, seen=seen: seen.append(r.url))
        offline.route("**/*", _only_files)
        tab = offline.new_page()
        tab.goto(uri)
        tab.wait_for_selector("body[data-ready^='succeeded']")
        assert {c: trace(tab, c) for c in tab.evaluate(CHARTS)} == live
        assert tab.inner_text("#summary") == summary
        assert seen == [uri]
        tab.screenshot(path=str(ARTIFACTS / f"report-offline-{name}.png"), full_page=True)
        offline.close()


def _only_files(route: Any) -> None:
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        route.abort()


# Last in the file: it adds a fourth job to the registry the other tests list.
def test_a_running_jobs_page_follows_it_until_it_ends(page: Any, served: Served) -> None:
    registry = Registry(served.registry_url)
    runner = JobRunner(registry, ResultStore(str(served.root / "results")), workers=1)
    job_id = runner.submit(prepare_job(small_mc(samples=300, chunk_size=100)), tenant="acme").id
    registry.set_status(job_id, JobStatus.RUNNING)
    sign_in(page, served.url, "acme-viewer")
    page.evaluate(f"location.hash = '#job/{job_id}'")
    page.wait_for_selector("body[data-ready='running:0']")
    assert "0 of 300 scenarios" in page.inner_text("#job-state")
    page.click("#cancel-job")
    page.wait_for_selector("#job-notice")
    assert "role viewer may not do this" in page.inner_text("#job-notice")
    assert not registry.get(job_id).cancel_requested
    # The page refreshes itself: progress recorded by a supervisor shows without a reload.
    registry.update_progress(job_id, 100, 0)
    page.wait_for_selector("body[data-ready='running:100']")
    assert "100 of 300 scenarios" in page.inner_text("#job-state")
    page.click("#logout")
    sign_in(page, served.url, "acme-submitter")
    page.evaluate(f"location.hash = '#job/{job_id}'")
    page.wait_for_selector("#cancel-job")
    page.click("#cancel-job")
    page.wait_for_selector("#job-notice")
    assert registry.get(job_id).cancel_requested
    registry.set_status(job_id, JobStatus.CANCELLED)
    page.wait_for_selector("body[data-ready='cancelled:100']")
    assert page.query_selector("#cancel-job") is None
    page.screenshot(path=str(ARTIFACTS / "job-page-cancelled.png"), full_page=True)
