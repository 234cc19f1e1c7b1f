"""The /v1 HTTP front on a real uvicorn server on loopback (no Ray: the scheduler is off and
jobs are queued rows with results written here): auth, tenants, quotas, limits, bad input,
results from storage, metrics and the committed contract."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.client import ApiError, Client
from api.settings import Settings
from jobs.registry import Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.api_support import auth, small_mc, thread_server, write_tokens

Server = Callable[..., tuple[str, Settings]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    """Start servers: serve(tenants=..., **settings) -> (url, settings)."""
    with ExitStack() as stack:

        def start(tenants: dict[str, Any] | None = None, **overrides: Any) -> tuple[str, Settings]:
            s = Settings(
                registry=f"sqlite:///{tmp_path}/registry.db",
                storage=str(tmp_path / "results"),
                tokens_file=str(write_tokens(tmp_path / "tokens.yaml", tenants)),
                scheduler=False,
                **overrides,
            )
            url = stack.enter_context(thread_server(create_app(s)))
            return url, s

        yield start


def _submit(url: str, token: str = "acme-submitter", **spec: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/jobs", json=small_mc(**spec), headers=auth(token))
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def _job_routes(job_id: str) -> list[tuple[str, str]]:
    base = f"/v1/jobs/{job_id}"
    return [
        ("GET", base),
        ("POST", f"{base}/cancel"),
        ("POST", f"{base}/resume"),
        ("GET", f"{base}/summary"),
        ("GET", f"{base}/results"),
        ("GET", f"{base}/results?format=parquet"),
        ("GET", f"{base}/results?format=csv"),
        ("GET", f"{base}/figures"),
        ("GET", f"{base}/discover"),
        ("GET", f"{base}/report"),
    ]


# ---- auth and tenants ------------------------------------------------------------------


def test_every_v1_operation_answers_401_without_or_with_a_wrong_token(serve: Server) -> None:
    url, _ = serve()
    job_id = _submit(url)["id"]
    routes = [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/validate"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/methanol_ammonia"),
        ("GET", "/v1/usage"),
        *_job_routes(job_id),
    ]
    for headers in ({}, auth("not-a-token"), {"Authorization": "Basic YWNtZTpzZWNyZXQ="}):
        for method, path in routes:
            r = httpx.request(method, url + path, headers=headers, json=small_mc())
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/healthz").status_code == 200  # outside /v1: no token


def test_a_hashed_key_in_the_tokens_file_accepts_its_token(serve: Server) -> None:
    url, s = serve()
    assert "acme-submitter" not in Path(s.tokens_file).read_text()
    assert _submit(url, "acme-submitter")["tenant"] == "acme"


def test_another_tenants_job_is_404_on_every_job_route(serve: Server) -> None:
    url, s = serve()
    job_id = _submit(url, "acme-submitter")["id"]
    ResultStore(s.storage).write_part(job_id, pa.table({"scenario_id": [0]}), 0)
    for method, path in _job_routes(job_id):
        r = httpx.request(method, url + path, headers=auth("globex-submitter"))
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == {
            "code": "not_found",
            "message": f"no job {job_id}",
            "details": [],
        }
    listed = httpx.get(f"{url}/v1/jobs", headers=auth("globex-submitter")).json()
    assert listed["data"] == []
    # Same tenant: visible to its viewer; an admin sees every tenant.
    assert httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth("acme-viewer")).status_code == 200
    globex = _submit(url, "globex-submitter")["id"]
    ids = [j["id"] for j in httpx.get(f"{url}/v1/jobs", headers=auth("acme-admin")).json()["data"]]
    assert set(ids) == {job_id, globex}


def test_a_viewer_reads_but_may_not_submit_cancel_or_resume(serve: Server) -> None:
    url, _ = serve()
    job_id = _submit(url)["id"]
    r = httpx.post(f"{url}/v1/jobs", json=small_mc(), headers=auth("acme-viewer"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    for action in ("cancel", "resume"):
        r = httpx.post(f"{url}/v1/jobs/{job_id}/{action}", headers=auth("acme-viewer"))
        assert r.status_code == 403


def test_unknown_job_and_model_are_404_and_a_bad_job_id_never_reaches_storage(
    serve: Server,
) -> None:
    url, _ = serve()
    h = auth("acme-viewer")
    assert httpx.get(f"{url}/v1/jobs/job-nope", headers=h).status_code == 404
    assert httpx.get(f"{url}/v1/models/no_such_model", headers=h).status_code == 404
    for bad in ("..", "a..b", "%2e%2e%2fetc"):
        r = httpx.get(f"{url}/v1/jobs/{bad}/results", headers=h)
        assert r.status_code in (404, 422), (bad, r.text)
        assert "error" in r.json()


# ---- limits and bad input --------------------------------------------------------------


def test_each_quota_answers_429_naming_the_limit_and_the_current_use(serve: Server) -> None:
    tenants = {
        "acme": {"max_scenarios_per_job": 50, "max_active_jobs": 2, "cpu_seconds_per_day": 10}
    }
    url, s = serve(tenants=tenants)
    h = auth("acme-submitter")

    r = httpx.post(f"{url}/v1/jobs", json=small_mc(samples=51), headers=h)
    assert r.status_code == 429
    err = r.json()["error"]
    assert (err["code"], err["limit"], err["current"], err["maximum"]) == (
        "quota_exceeded",
        "max_scenarios_per_job",
        51,
        50,
    )
    assert "max_scenarios_per_job" in err["message"] and "51" in err["message"]

    first = _submit(url)["id"]
    _submit(url)
    r = httpx.post(f"{url}/v1/jobs", json=small_mc(), headers=h)
    assert r.status_code == 429
    assert (r.json()["error"]["limit"], r.json()["error"]["current"]) == ("max_active_jobs", 2)
    # Another tenant has its own count.
    _submit(url, "globex-submitter")

    reg = Registry(s.registry)
    reg.set_status(first, JobStatus.RUNNING)
    reg.record_chunk(first, 0, 10, "node", "path", compute_seconds=12.5)
    reg.set_status(first, JobStatus.SUCCEEDED)
    r = httpx.post(f"{url}/v1/jobs", json=small_mc(), headers=h)
    assert r.status_code == 429
    err = r.json()["error"]
    assert (err["limit"], err["current"], err["maximum"]) == ("cpu_seconds_per_day", 12.5, 10)


def test_a_body_over_the_limit_is_413_with_or_without_content_length(serve: Server) -> None:
    url, _ = serve(max_body_bytes=4096)
    h = {**auth("acme-submitter"), "Content-Type": "application/json"}
    big = json.dumps({**small_mc(), "description": "x" * 5000}).encode()
    r = httpx.post(f"{url}/v1/jobs", content=big, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    r = httpx.post(f"{url}/v1/jobs", content=chunked(), headers=h)
    assert r.status_code == 413


def test_invalid_jobs_are_422_with_the_path_of_every_problem(serve: Server) -> None:
    url, _ = serve()
    h = auth("acme-submitter")
    spec = small_mc()
    spec["scenarios"]["samples"] = 0
    spec["seed"] = -1
    r = httpx.post(f"{url}/v1/jobs", json=spec, headers=h)
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert {"scenarios.samples", "seed"} <= paths, paths

    spec = small_mc()
    spec["scenarios"]["parameters"]["markets.no_such.price"] = {
        "dist": "uniform",
        "low": 0,
        "high": 1,
    }
    r = httpx.post(f"{url}/v1/jobs/validate", json=spec, headers=h)
    assert r.status_code == 422
    assert any(
        "markets.no_such.price" in d["message"] or "markets.no_such.price" in (d["path"] or "")
        for d in r.json()["error"]["details"]
    )

    # A server never reads a file a request names.
    r = httpx.post(f"{url}/v1/jobs", json={**small_mc(), "model": "/etc/passwd"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "model"
    assert (
        httpx.get(f"{url}/v1/jobs?limit=0", headers=h).json()["error"]["details"][0]["path"]
        == "query.limit"
    )
    assert httpx.get(f"{url}/v1/jobs", headers=h).json()["count"] == 0  # nothing was stored

    ok = httpx.post(f"{url}/v1/jobs/validate", json=small_mc(), headers=h)
    assert ok.status_code == 200 and ok.json()["total_scenarios"] == 40


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinities_are_refused(serve: Server, number: str) -> None:
    url, _ = serve()
    text = json.dumps(small_mc()).replace('"std": 0.18', f'"std": {number}')
    assert number in text
    r = httpx.post(
        f"{url}/v1/jobs",
        content=text,
        headers={**auth("acme-submitter"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert "NaN and infinite" in r.json()["error"]["message"]


# ---- listing, results ------------------------------------------------------------------


def test_jobs_are_listed_newest_first_filtered_by_status_and_label_and_paged(serve: Server) -> None:
    url, s = serve()
    ids = [_submit(url, labels={"team": "a" if i % 2 else "b"})["id"] for i in range(5)]
    Registry(s.registry).request_cancel(ids[0])
    with Client(url, "acme-viewer") as c:
        assert [j.id for j in c.jobs().data] == ids[::-1]
        assert [j.id for j in c.jobs(status="cancelled").data] == [ids[0]]
        assert [j.id for j in c.jobs(labels={"team": "a"}).data] == [ids[3], ids[1]]
        page = c.jobs(limit=2, offset=2)
        assert [j.id for j in page.data] == [ids[2], ids[1]] and page.next_offset == 4
        assert c.jobs(limit=2, offset=4).next_offset is None
        with pytest.raises(ApiError) as exc:
            c.jobs(status="sleeping")
        assert exc.value.status == 422


def _fill_results(s: Settings, job_id: str, parts: int = 4, rows: int = 10) -> pa.Table:
    """Parts as a supervisor commits them, with a NaN IRR and an all-null error column."""
    store, reg = ResultStore(s.storage), Registry(s.registry)
    reg.set_status(job_id, JobStatus.RUNNING)
    tables = []
    for k in range(parts):
        ids = np.arange(k * rows, (k + 1) * rows, dtype=np.int64)
        irr = ids / 100.0
        irr[0] = np.nan
        t = pa.table(
            {
                "scenario_id": ids,
                "status": ["ok"] * rows,
                "error": pa.nulls(rows, pa.string()) if k else pa.nulls(rows),
                "npv": ids * 1.5,
                "irr": irr,
            }
        )
        store.write_part(job_id, t, k)
        reg.record_chunk(job_id, k, rows, "node", "p", compute_seconds=0.5)
        tables.append(t)
    reg.update_progress(job_id, parts * rows, 0)
    return pa.concat_tables(tables, promote_options="default")


def test_results_are_served_in_json_pages_and_streamed_as_parquet_and_csv(
    serve: Server, tmp_path: Path
) -> None:
    url, s = serve()
    job_id = _submit(url)["id"]
    expected = _fill_results(s, job_id)
    with Client(url, "acme-viewer") as c:
        page = c.results_page(job_id, limit=15, offset=5, columns=["scenario_id", "irr"])
        assert page.columns == ["scenario_id", "irr"] and page.total == 40
        assert [r["scenario_id"] for r in page.rows] == list(range(5, 20))
        assert page.next_offset == 20
        assert page.rows[5]["irr"] is None  # NaN travels as null: JSON has no NaN
        rows = list(c.rows(job_id, page=7))
        assert [r["scenario_id"] for r in rows] == list(range(40))
        assert c.results_page(job_id, offset=40).rows == []
        with pytest.raises(ApiError) as exc:
            c.results_page(job_id, columns=["nope"])
        assert exc.value.status == 422

        got = pq.read_table(c.download(job_id, tmp_path / "r.parquet"))
        assert got.num_rows == 40 and pq.ParquetFile(tmp_path / "r.parquet").num_row_groups == 4
        assert got.column("npv").to_pylist() == expected.column("npv").to_pylist()
        csv = pacsv.read_csv(c.download(job_id, tmp_path / "r.csv"))
        assert csv.column("scenario_id").to_pylist() == list(range(40))
    r = httpx.get(f"{url}/v1/jobs/{job_id}/results?format=csv", headers=auth("acme-viewer"))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].replace('"', "") == "scenario_id,status,error,npv,irr"
    raw = httpx.get(f"{url}/v1/jobs/{job_id}/results?format=parquet", headers=auth("acme-viewer"))
    assert pq.read_table(io.BytesIO(raw.content)).num_rows == 40


def test_job_detail_summary_and_usage(serve: Server) -> None:
    url, s = serve()
    job_id = _submit(url)["id"]
    with Client(url, "acme-viewer") as c:
        with pytest.raises(ApiError) as exc:
            c.summary(job_id)
        assert (exc.value.status, exc.value.code) == (409, "not_ready")
        _fill_results(s, job_id)
        job = c.job(job_id)
        assert job.status is JobStatus.RUNNING and job.progress == 1.0
        assert job.storage == f"{s.storage}/jobs/{job_id}"
        ResultStore(s.storage).write_json(job_id, "summary.json", {"scenarios": 40})
        assert c.summary(job_id) == {"scenarios": 40}
        usage = c.usage().data
        assert [(u.tenant, u.jobs, u.scenarios, u.cpu_seconds) for u in usage] == [
            ("acme", 1, 40, 2.0)
        ]
    with Client(url, "globex-submitter") as c:
        assert [(u.tenant, u.jobs) for u in c.usage().data] == [("globex", 0)]
    with Client(url, "acme-admin") as c:
        assert [u.tenant for u in c.usage().data] == ["acme"]
        assert c.model("methanol_ammonia").parameters


# ---- metrics, health, contract ---------------------------------------------------------


def test_metrics_parse_and_count_jobs_scenarios_and_requests(serve: Server) -> None:
    url, s = serve()

    def scrape() -> dict[str, Any]:
        text = httpx.get(f"{url}/metrics").text
        return {
            (x.name, tuple(sorted(x.labels.items()))): x.value
            for m in text_string_to_metric_families(text)
            for x in m.samples
        }

    before = scrape()
    assert before[("edt_queue_depth", ())] == 0
    job_id = _submit(url)["id"]
    _fill_results(s, job_id)
    after = scrape()
    assert after[("edt_jobs", (("status", "running"),))] == 1
    assert after[("edt_scenarios_computed_total", ())] == 40
    assert after[("edt_scenarios_per_second", ())] > 0
    route = (("method", "POST"), ("route", "/v1/jobs"), ("status", "202"))
    assert after[("edt_http_request_duration_seconds_count", route)] == 1


def test_readyz_names_registry_storage_and_ray(serve: Server) -> None:
    url, _ = serve()
    r = httpx.get(f"{url}/readyz")
    assert r.status_code == 200 and set(r.json()["checks"]) == {"registry", "storage", "ray"}


# ---- the CLI over HTTP ------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_speaks_to_the_api_with_a_token(serve: Server, tmp_path: Path) -> None:
    import subprocess

    import yaml

    from tests.api_support import BIN

    url, s = serve()
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(small_mc()))
    env = {
        "PATH": str(BIN),
        "HOME": str(tmp_path),
        "EDT_API_URL": url,
        "EDT_TOKEN": "acme-submitter",
    }

    def edt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "edt"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    out = edt("submit", "job.yaml")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    _fill_results(s, job_id)
    assert json.loads(edt("status", job_id).stdout)["status"] == "running"
    assert job_id in edt("jobs").stdout
    assert edt("results", job_id, "-o", "r.parquet").returncode == 0
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 40
    assert edt("results", job_id).stdout.splitlines()[0] == "scenario_id,status,error,npv,irr"
    assert "acme" in edt("usage").stdout
    assert "cancel requested" in edt("cancel", job_id).stdout
    bad = edt("status", job_id, "--token", "wrong")
    assert bad.returncode == 1 and bad.stderr.strip() == "error: unknown token (401 unauthorized)"
    other = edt("status", job_id, "--token", "globex-submitter")
    assert f"no job {job_id}" in other.stderr and "Traceback" not in other.stderr


def test_an_adaptive_jobs_detail_shows_its_last_checkpoint_per_target(serve: Server) -> None:
    import yaml

    from tests.api_support import ROOT

    url, s = serve()
    spec = yaml.safe_load((ROOT / "examples/jobs/methanol_adaptive.yaml").read_text())
    h = auth("acme-submitter")
    job_id = httpx.post(f"{url}/v1/jobs", json=spec, headers=h).json()["id"]
    assert httpx.get(f"{url}/v1/jobs/{job_id}", headers=h).json().get("convergence") is None
    row = {
        "metric": "npv",
        "statistic": "mean",
        "estimate": 4.6,
        "lower": 4.3,
        "upper": 4.9,
        "half_width": 0.3,
        "goal": 0.2,
        "met": False,
    }
    history = [
        {**row, "n": 512},
        {**row, "n": 1024, "half_width": 0.21},
        {**row, "n": 1024, "statistic": "prob_negative", "met": True},
    ]
    ResultStore(s.storage).write_json(job_id, "convergence.json", {"history": history})
    got = httpx.get(f"{url}/v1/jobs/{job_id}", headers=h).json()["convergence"]
    assert [(c["n"], c["statistic"], c["half_width"]) for c in got] == [
        (1024, "mean", 0.21),
        (1024, "prob_negative", 0.3),
    ]
