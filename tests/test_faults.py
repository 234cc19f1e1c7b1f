"""Infrastructure faults on a real Ray instance and a real S3 server behind a cuttable proxy.

A storage outage is not a scenario failure: within the fault budget the job waits and
completes; past it the job is interrupted (resumable), and `edt resume` finishes it. A scenario
that kills its worker process is isolated as one `error` row.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cluster.pool import CRASH_MESSAGE
from cluster.supervisor import JobRunner
from jobs.registry import Registry
from jobs.spec import prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.support import FaultProxy, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]
EDT = str(Path(sys.executable).parent / "edt")


def _job(samples: int) -> dict[str, Any]:
    return {
        "name": "fault-test",
        "model": "methanol_ammonia",
        "seed": 5,
        "scenarios": {
            "kind": "monte_carlo",
            "samples": samples,
            "parameters": {
                "markets.methanol_sales.price": {"dist": "uniform", "low": 0.25, "high": 0.4}
            },
        },
    }


def _exactly_once(store: ResultStore, job_id: str, n: int) -> None:
    ids = store.read_scenarios(job_id).column("scenario_id").to_numpy()
    assert np.array_equal(ids, np.arange(n)), "every scenario exactly once"


def _start(runner: JobRunner, job_id: str) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(runner.run(job_id)), daemon=True)
    t.start()
    return t, out


def test_a_storage_outage_within_the_budget_is_waited_out(
    tmp_path: Path, s3_bucket: str, s3_proxy: FaultProxy, gate: Path
) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    runner = JobRunner(reg, ResultStore(f"s3://{s3_bucket}/edt"), workers=2, fault_seconds=120)
    rec = runner.submit(prepare_job(_job(3000)), chunk_size=500)
    thread, out = _start(runner, rec.id)
    wait_for(lambda: reg.committed_chunks(rec.id) == {0}, what="first chunk committed")
    s3_proxy.cut()
    (gate / "open").touch()
    wait_for(
        lambda: "waiting for storage" in (reg.get(rec.id).message or ""),
        what="the job saying it waits for storage",
    )
    assert reg.get(rec.id).status is JobStatus.RUNNING
    s3_proxy.restore()
    thread.join(timeout=300)
    assert out and out[0].status is JobStatus.SUCCEEDED
    assert s3_proxy.refused > 0, "the outage was seen by the job"
    final = reg.get(rec.id)
    assert final.message is None and final.scenarios_done == 3000
    _exactly_once(runner.store, rec.id, 3000)


def test_an_outage_longer_than_the_budget_interrupts_and_edt_resume_finishes(
    tmp_path: Path, s3_bucket: str, s3_proxy: FaultProxy, gate: Path
) -> None:
    registry_url = f"sqlite:///{tmp_path / 'r.db'}"
    reg = Registry(registry_url)
    runner = JobRunner(reg, ResultStore(f"s3://{s3_bucket}/edt"), workers=1, fault_seconds=3)
    rec = runner.submit(prepare_job(_job(3000)), chunk_size=500)
    thread, out = _start(runner, rec.id)
    wait_for(lambda: reg.committed_chunks(rec.id) == {0}, what="first chunk committed")
    s3_proxy.cut()
    (gate / "open").touch()
    thread.join(timeout=300)
    interrupted = reg.get(rec.id)
    assert out and interrupted.status is JobStatus.INTERRUPTED
    assert interrupted.error and "\n" not in interrupted.error
    assert "unreachable" in interrupted.error and f"s3://{s3_bucket}/edt" in interrupted.error
    assert interrupted.interruptions == 1

    s3_proxy.restore()
    other = tmp_path / "elsewhere"
    other.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "EDT_TEST_GATE_DIR": ""}
    done = subprocess.run(
        [EDT, "resume", rec.id, "--registry", registry_url],
        cwd=other,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert reg.get(rec.id).status is JobStatus.SUCCEEDED
    _exactly_once(runner.store, rec.id, 3000)
    assert not (other / "edt-data" / "results").exists(), "results went to the job's own storage"


def test_a_scenario_that_kills_its_worker_is_one_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDT_TEST_CRASH_IDS", "13")
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    runner = JobRunner(reg, ResultStore(str(tmp_path / "res")), workers=2)
    rec = runner.submit(prepare_job(_job(40)), chunk_size=10)
    final = runner.run(rec.id)
    assert final.status is JobStatus.SUCCEEDED and final.scenarios_failed == 1
    rows = runner.store.read_scenarios(rec.id).to_pylist()
    assert [r["scenario_id"] for r in rows] == list(range(40))
    assert [r["scenario_id"] for r in rows if r["status"] != "ok"] == [13]
    assert rows[13]["status"] == "error" and rows[13]["error"] == CRASH_MESSAGE
    assert all(np.isfinite(r["npv"]) for r in rows if r["status"] == "ok")


def test_edt_run_on_bad_storage_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(_job(10)))
    (tmp_path / "file").write_text("x")
    out = subprocess.run(
        [
            EDT,
            "run",
            str(tmp_path / "job.yaml"),
            "--storage",
            str(tmp_path / "file" / "res"),
            "--registry",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip().startswith("error: storage: ")
        and len(out.stderr.strip().splitlines()) == 1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "job.yaml"]
