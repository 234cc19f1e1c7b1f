"""The API end to end: `edt serve` in its own process on loopback, real Ray (embedded, or a
`ray start` cluster), jobs submitted over HTTP run to the end, are cancelled, and survive the
API process being SIGKILLed. Chunks >= 1 are held at a gate (EDT_TEST_GATE_DIR) until the
test opens it, so "mid-job" is a state, not a timing guess."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.client import ApiError, Client
from jobs.registry import Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.api_support import BIN, ServerProcess, poll, small_mc, small_optimize, write_tokens

pytestmark = pytest.mark.slow
TOKEN = "acme-submitter"
Start = Callable[..., ServerProcess]


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    folder = tmp_path / "gate"
    folder.mkdir()
    return folder


@pytest.fixture
def serve(tmp_path: Path, gate: Path) -> Iterator[Start]:
    """start(address=None, gated=False) -> a running `edt serve` on the test's registry."""
    write_tokens(tmp_path / "tokens.yaml")
    with ExitStack() as stack:

        def start(address: str | None = None, gated: bool = False) -> ServerProcess:
            env = {
                **os.environ,
                "RAY_AUTH_MODE": "disabled",
                "EDT_REGISTRY": f"sqlite:///{tmp_path / 'registry.db'}",
                "EDT_STORAGE": str(tmp_path / "results"),
                "EDT_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
                "EDT_WORKERS": "2",
                "EDT_SCHEDULER_INTERVAL": "0.2",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            env.pop("RAY_ADDRESS", None)
            if address:
                env["EDT_ADDRESS"] = address
            if gated:
                env["EDT_TEST_GATE_DIR"] = str(gate)
            server = ServerProcess(env, tmp_path).start()
            stack.callback(server.stop)
            return server

        yield start


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(text)
        for s in m.samples
    }


def _exactly_once(tmp_path: Path, job_id: str, total: int) -> None:
    table = ResultStore(str(tmp_path / "results")).read_scenarios(job_id)
    assert table.column("scenario_id").to_pylist() == list(range(total))
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert sum(c.rows for c in reg.chunks(job_id)) == total


def _check_results(c: Client, job_id: str, total: int, tmp_path: Path) -> None:
    rows = list(c.rows(job_id, page=17))
    assert [r["scenario_id"] for r in rows] == list(range(total))
    parquet = pq.read_table(c.download(job_id, tmp_path / f"{job_id}.parquet"))
    csv = pacsv.read_csv(c.download(job_id, tmp_path / f"{job_id}.csv"))
    assert parquet.num_rows == csv.num_rows == total
    assert parquet.column("npv").to_pylist() == [r["npv"] for r in rows]
    page = c.results_page(job_id, limit=3, offset=2, columns=["scenario_id", "npv"])
    assert page.columns == ["scenario_id", "npv"] and len(page.rows) == 3


def test_monte_carlo_and_optimize_jobs_submitted_over_http_run_to_the_end(
    serve: Start, tmp_path: Path
) -> None:
    server = serve()
    before = _scrape(server.url)
    with Client(server.url, TOKEN) as c:
        mc = c.submit(small_mc(samples=60, chunk_size=20))
        opt = c.submit(small_optimize())
        assert mc.status is JobStatus.QUEUED and mc.total_scenarios == 60
        for job, total in ((mc, 60), (opt, 8)):
            final = c.wait(job.id, poll=0.2, timeout=300)
            assert final.status is JobStatus.SUCCEEDED, final
            assert final.progress == 1.0 and final.storage
            summary = c.summary(job.id)
            assert summary["scenarios"] == total
            assert final.status_counts == summary["status_counts"]
            _check_results(c, job.id, total, tmp_path)
        assert c.summary(opt.id)["mode"] == "optimize"
        (usage,) = c.usage().data  # CPU-seconds: the sum of the chunks' compute times
        assert (usage.tenant, usage.jobs, usage.scenarios) == ("acme", 2, 68)
        assert usage.cpu_seconds > 0
        assert "objective" in c.results_page(opt.id, limit=1).columns
    after = _scrape(server.url)
    assert after[("edt_jobs", (("status", "succeeded"),))] == 2
    assert (
        after[("edt_scenarios_computed_total", ())] - before[("edt_scenarios_computed_total", ())]
        == 68
    )
    assert after[("edt_scenarios_per_second", ())] > 0
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["ray"]["ok"]

    # The CLI over HTTP: `edt submit --wait` prints the id, follows, exits 0 on success.
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(small_mc(samples=20, chunk_size=10)))
    env = {**os.environ, "EDT_API_URL": server.url, "EDT_TOKEN": TOKEN}
    out = subprocess.run(
        [str(BIN / "edt"), "submit", str(tmp_path / "job.yaml"), "--wait"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.splitlines()[0]
    assert json.loads("\n".join(out.stdout.splitlines()[1:]))["scenarios"] == 20
    with Client(server.url, TOKEN) as c:
        assert c.job(job_id).status is JobStatus.SUCCEEDED


def _held(c: Client, job_id: str, chunk_size: int) -> Any:
    """Wait until chunk 0 is committed and the rest are held at the gate."""
    return poll(lambda: (j := c.job(job_id)).scenarios_done >= chunk_size and j, timeout=180)


def test_cancel_of_a_running_job_ends_cancelled_with_its_committed_parts_kept(
    serve: Start, gate: Path, tmp_path: Path
) -> None:
    server = serve(gated=True)
    with Client(server.url, TOKEN) as c:
        job = c.submit(small_mc(samples=200, chunk_size=20))
        _held(c, job.id, 20)
        assert c.cancel(job.id).cancel_requested
        (gate / "open").touch()  # the chunks in flight may finish now
        final = c.wait(job.id, poll=0.2, timeout=180)
        assert final.status is JobStatus.CANCELLED
        parts = ResultStore(str(tmp_path / "results")).list_parts(job.id)
        assert 0 in parts  # committed before the cancel, kept after it
        reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
        assert sorted(reg.committed_chunks(job.id)) == parts
        with pytest.raises(ApiError) as exc:
            c.summary(job.id)  # a cancelled job is not summarised
        assert exc.value.code == "not_ready"
        page = c.results_page(job.id, limit=1000)
        assert len(page.rows) == 20 * len(parts) == final.scenarios_done
        assert [r["scenario_id"] for r in page.rows][:20] == list(range(20))


def _kill_and_restart(
    serve: Start, server: ServerProcess, gate: Path, address: str | None
) -> tuple[ServerProcess, Client]:
    server.kill()
    restarted = serve(address=address, gated=True)
    return restarted, Client(restarted.url, TOKEN)


def test_the_api_killed_mid_job_and_restarted_embedded_the_job_completes_once(
    serve: Start, gate: Path, tmp_path: Path
) -> None:
    server = serve(gated=True)
    with Client(server.url, TOKEN) as c:
        job = c.submit(small_mc(samples=120, chunk_size=20))
        _held(c, job.id, 20)
    first_runner = Registry(f"sqlite:///{tmp_path / 'registry.db'}").get(job.id).runner
    # Embedded: Ray goes down with the API process; the restarted API's reconciler resumes.
    (gate / "open").touch()
    server, c = _kill_and_restart(serve, server, gate, None)
    with c:
        final = c.wait(job.id, poll=0.2, timeout=300)
        assert final.status is JobStatus.SUCCEEDED, final
        assert c.summary(job.id)["scenarios"] == 120
    # A new supervisor (started by the restarted API's reconciler) finished it.
    last_runner = Registry(f"sqlite:///{tmp_path / 'registry.db'}").get(job.id).runner
    assert first_runner is not None and last_runner != first_runner
    _exactly_once(tmp_path, job.id, 120)


def test_the_api_killed_mid_job_on_a_ray_cluster_the_supervisor_goes_on(
    serve: Start,
    gate: Path,
    tmp_path: Path,
    ray_head: str,
) -> None:
    server = serve(address=ray_head, gated=True)
    with Client(server.url, TOKEN) as c:
        job = c.submit(small_mc(samples=120, chunk_size=20))
        _held(c, job.id, 20)
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    runner_before = reg.get(job.id).runner
    server, c = _kill_and_restart(serve, server, gate, ray_head)
    with c:
        # The restarted API finds the supervisor alive and leaves it alone.
        assert c.job(job.id).status is JobStatus.RUNNING
        (gate / "open").touch()
        final = c.wait(job.id, poll=0.2, timeout=300)
        assert final.status is JobStatus.SUCCEEDED, final
        assert final.interruptions == 0
    assert runner_before is not None and reg.get(job.id).runner == runner_before
    _exactly_once(tmp_path, job.id, 120)
    manifest = ResultStore(str(tmp_path / "results")).read_json(job.id, "manifest.json")
    assert manifest["recomputed_chunks_this_run"] == 6  # one supervisor run did every chunk


def test_edt_submit_queues_locally_and_a_standalone_edt_scheduler_runs_it(tmp_path: Path) -> None:
    import signal

    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "EDT_REGISTRY": f"sqlite:///{tmp_path / 'registry.db'}",
        "EDT_STORAGE": str(tmp_path / "results"),
        "EDT_WORKERS": "2",
        "EDT_SCHEDULER_INTERVAL": "0.2",
    }
    env.pop("RAY_ADDRESS", None)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(small_mc(samples=40, chunk_size=10)))
    out = subprocess.run(
        [str(BIN / "edt"), "submit", str(tmp_path / "job.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    reg = Registry(env["EDT_REGISTRY"])
    assert reg.get(job_id).status is JobStatus.QUEUED
    sched = subprocess.Popen(
        [str(BIN / "edt"), "scheduler"],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll(lambda: reg.get(job_id).status.is_terminal(), timeout=300, every=0.5)
    finally:
        os.killpg(sched.pid, signal.SIGTERM)
        sched.wait(60)
    assert reg.get(job_id).status is JobStatus.SUCCEEDED
    _exactly_once(tmp_path, job_id, 40)
