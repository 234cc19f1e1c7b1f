"""Jobs on a real Ray instance: chunked actors, Parquet parts, registry commits, failures."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cluster.supervisor import JobRunner
from jobs.registry import Registry
from jobs.spec import prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.support import assert_identical

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def _job(samples: int = 300, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "cluster-test",
        "model": "methanol_ammonia",
        "seed": 11,
        "scenarios": {
            "kind": "monte_carlo",
            "samples": samples,
            "parameters": {
                "markets.methanol_sales.price": {
                    "dist": "lognormal",
                    "mean": 1.0,
                    "std": 0.2,
                    "mode": "multiplier",
                },
                "projects.methanol_debottleneck.capex": {"dist": "uniform", "low": 40, "high": 70},
            },
        },
    }
    data.update(over)
    return data


def _runner(tmp_path: Path, name: str, workers: int) -> JobRunner:
    return JobRunner(
        Registry(f"sqlite:///{tmp_path / 'registry.db'}"),
        ResultStore(str(tmp_path / name)),
        workers=workers,
    )


def test_same_table_with_chunk_7_on_1_worker_and_256_on_2(tmp_path: Path) -> None:
    job = prepare_job(_job(samples=300))
    one = _runner(tmp_path, "a", 1)
    rec1 = one.submit(job, chunk_size=7)
    assert one.run(rec1.id).status == JobStatus.SUCCEEDED
    two = _runner(tmp_path, "b", 2)
    rec2 = two.submit(job, chunk_size=256)
    assert two.run(rec2.id).status == JobStatus.SUCCEEDED
    assert rec1.total_chunks == 43 and rec2.total_chunks == 2
    assert_identical(one.store.read_scenarios(rec1.id), two.store.read_scenarios(rec2.id))


def test_layout_summary_and_manifest(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "r", 2)
    rec = runner.submit(prepare_job(_job(samples=120, outputs={"timeseries": True})), chunk_size=50)
    final = runner.run(rec.id)
    assert final.status == JobStatus.SUCCEEDED and final.scenarios_done == 120
    root = tmp_path / "r" / "jobs" / rec.id
    assert sorted(p.name for p in (root / "scenarios").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert (root / "timeseries" / "part-00002.parquet").exists()
    manifest = runner.store.read_json(rec.id, "manifest.json")
    assert [c["rows"] for c in manifest["chunks"]] == [50, 50, 20]
    assert all(c["node"] for c in manifest["chunks"])
    summary = runner.store.read_json(rec.id, "summary.json")
    npv = pd.read_parquet(root / "scenarios")["npv"]
    assert summary["npv"]["count"] == 120
    assert summary["npv"]["mean"] == pytest.approx(float(npv.mean()), rel=1e-12)
    assert summary["npv"]["prob_negative"] == pytest.approx(float((npv < 0).mean()))


def test_every_scenario_once_when_a_worker_process_is_killed(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "k", 2)
    rec = runner.submit(prepare_job(_job(samples=4000)), chunk_size=100)
    killed: list[int] = []

    def kill_one_when_running() -> None:
        # Wait (by polling the registry, not sleeping a fixed time) until chunks are flowing.
        while not runner.actor_pids or len(runner.registry.committed_chunks(rec.id)) < 3:
            if runner.registry.get(rec.id).status.is_terminal():
                return
            threading.Event().wait(0.01)
        os.kill(runner.actor_pids[0], signal.SIGKILL)
        killed.append(runner.actor_pids[0])

    t = threading.Thread(target=kill_one_when_running)
    t.start()
    final = runner.run(rec.id)
    t.join()
    assert killed, "the worker was not killed while the job ran"
    assert final.status == JobStatus.SUCCEEDED
    ids = runner.store.read_scenarios(rec.id).column("scenario_id").to_numpy()
    assert np.array_equal(np.sort(ids), np.arange(4000))


def test_failing_scenarios_are_recorded_and_the_job_succeeds(tmp_path: Path) -> None:
    data = _job()
    data["scenarios"] = {
        "kind": "grid",
        # Each value is in its domain, but 45 t in a 30 t tank is not: that scenario fails.
        "parameters": {"storages.methanol_tanks.initial": [10.0, 45.0, 20.0]},
    }
    runner = _runner(tmp_path, "f", 1)
    rec = runner.submit(prepare_job(data))
    final = runner.run(rec.id)
    assert final.status == JobStatus.SUCCEEDED and final.scenarios_failed == 1
    table = runner.store.read_scenarios(rec.id).to_pylist()
    assert [r["status"] for r in table] == ["ok", "error", "ok"]
    assert runner.store.read_json(rec.id, "summary.json")["status_counts"]["error"] == 1


def test_cancel_keeps_committed_parts(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "c", 1)
    rec = runner.submit(prepare_job(_job(samples=6000)), chunk_size=100)

    def cancel_after_first_chunk() -> None:
        while not runner.registry.committed_chunks(rec.id):
            threading.Event().wait(0.01)
        runner.registry.request_cancel(rec.id)

    t = threading.Thread(target=cancel_after_first_chunk)
    t.start()
    final = runner.run(rec.id)
    t.join()
    assert final.status == JobStatus.CANCELLED
    committed = runner.registry.committed_chunks(rec.id)
    assert 0 < len(committed) < rec.total_chunks
    assert set(runner.store.list_parts(rec.id)) == committed
    with pytest.raises(ValueError, match="already cancelled"):
        runner.run(rec.id)


def test_results_on_s3_through_a_real_s3_server(tmp_path: Path, s3_bucket: str) -> None:
    runner = JobRunner(
        Registry(f"sqlite:///{tmp_path / 'r.db'}"), ResultStore(f"s3://{s3_bucket}/edt"), workers=1
    )
    rec = runner.submit(prepare_job(_job(samples=60)), chunk_size=25)
    assert runner.run(rec.id).status == JobStatus.SUCCEEDED
    table = ResultStore(f"s3://{s3_bucket}/edt").read_scenarios(rec.id)
    assert table.num_rows == 60
    assert ResultStore(f"s3://{s3_bucket}/edt").exists(rec.id, "manifest.json")


def test_storage_refusing_writes_longer_than_the_budget_interrupts_the_job(
    tmp_path: Path,
) -> None:
    runner = _runner(tmp_path, "e", 1)
    runner.fault_seconds = 2.0
    rec = runner.submit(prepare_job(_job(samples=20)), chunk_size=10)
    # A file where the scenarios folder should be: every attempt to write a part fails.
    blocker = tmp_path / "e" / "jobs" / rec.id / "scenarios"
    blocker.write_text("not a folder")
    final = runner.run(rec.id)
    assert final.status == JobStatus.INTERRUPTED
    assert final.error is not None and "\x1b" not in final.error and "\n" not in final.error
    assert "unreachable" in final.error and "scenarios" in final.error
    # The storage repaired, the same job resumes and completes.
    blocker.unlink()
    assert runner.run(rec.id).status == JobStatus.SUCCEEDED
    ids = runner.store.read_scenarios(rec.id).column("scenario_id").to_numpy()
    assert np.array_equal(ids, np.arange(20))


def test_more_workers_than_cpus_does_not_wait_forever(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "w", 8)  # the shared Ray instance has 2 CPUs
    rec = runner.submit(prepare_job(_job(samples=30)), chunk_size=10)
    assert runner.run(rec.id).status == JobStatus.SUCCEEDED
    assert runner.store.read_json(rec.id, "manifest.json")["workers"] == 2


def test_a_plan_cut_short_by_the_time_limit_is_a_time_limit_row_that_counts(
    tmp_path: Path,
) -> None:
    # steel_minimill's MILP takes seconds to close a zero gap; 0.3 s stops it with a plan
    # (HiGHS finds one within ~0.02 s here), so rows are time_limit with a positive gap.
    job = prepare_job(
        {
            "name": "time-limit",
            "model": "steel_minimill",
            "mode": "optimize",
            "scenarios": {
                "kind": "list",
                "scenarios": [{"name": "base"}, {"name": "base-again"}],
            },
            "solver": {"time_limit": 0.3, "mip_gap": 0.0},
        }
    )
    runner = _runner(tmp_path, "t", 1)
    rec = runner.submit(job, chunk_size=2)
    final = runner.run(rec.id)
    assert final.status == JobStatus.SUCCEEDED
    df = runner.store.read_scenarios(rec.id).to_pandas()
    limited = df[df.status == "time_limit"]
    assert len(limited) >= 1, df[["status", "error", "mip_gap"]]
    assert (limited.mip_gap > 0).all() and np.isfinite(limited.objective).all()
    # Rows that count are not failed: the registry and the summary agree with the table.
    failed = int(df.status.isin(["infeasible", "error"]).sum())
    assert final.scenarios_failed == failed
    summary = runner.store.read_json(rec.id, "summary.json")
    assert summary["status_counts"]["time_limit"] == len(limited)
    assert summary["npv"]["count"] == int(df.status.isin(["ok", "time_limit"]).sum())


def test_object_storage_settings_set_after_ray_started_reach_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from cluster.pool import start_pool, stop_pool

    # Set now, after the session's Ray started: only the pool's runtime_env can carry them.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/forwarded")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "forwarded-key")
    monkeypatch.setenv("EDT_NOT_FORWARDED", "x")
    actors = start_pool(str(tmp_path / "res"), 1)
    try:
        pid = ray.get(actors[0].pid.remote())
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)
    finally:
        stop_pool(actors)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1/forwarded"
    assert env["AWS_ACCESS_KEY_ID"] == "forwarded-key"
    assert "EDT_NOT_FORWARDED" not in env
