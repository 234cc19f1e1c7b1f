"""`edt run` killed mid-job, then `edt resume`: only chunks with no committed part are recomputed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jobs.registry import Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore

pytestmark = pytest.mark.slow
EDT = str(Path(sys.executable).parent / "edt")


def _wait_for(predicate, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)  # polling interval, not a wait for a fixed time


def test_resume_after_the_driver_is_killed_recomputes_only_missing_chunks(tmp_path: Path) -> None:
    job = {
        "name": "resume-test",
        "model": "methanol_ammonia",
        "seed": 3,
        "scenarios": {
            "kind": "monte_carlo",
            "samples": 30000,
            "parameters": {
                "markets.methanol_sales.price": {"dist": "uniform", "low": 0.25, "high": 0.4}
            },
        },
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    registry_url = f"sqlite:///{tmp_path / 'r.db'}"
    common = ["--storage", str(tmp_path / "results"), "--registry", registry_url, "--workers", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(
        [EDT, "run", str(tmp_path / "job.yaml"), "--chunk-size", "1000", *common],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    reg = Registry(registry_url)
    try:
        _wait_for(lambda: (tmp_path / "r.db").exists() and bool(reg.list_jobs()))
        job_id = reg.list_jobs()[0].id
        _wait_for(lambda: len(reg.committed_chunks(job_id)) >= 3 or driver.poll() is not None)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    record = reg.get(job_id)
    assert record.status == JobStatus.RUNNING, "the job finished before the driver was killed"
    before = len(reg.committed_chunks(job_id))
    assert 0 < before < record.total_chunks == 30

    out = subprocess.run(
        [EDT, "resume", job_id, *common], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr
    store = ResultStore(str(tmp_path / "results"))
    manifest = store.read_json(job_id, "manifest.json")
    assert manifest["recomputed_chunks_this_run"] == record.total_chunks - before
    assert reg.get(job_id).status == JobStatus.SUCCEEDED
    ids = store.read_scenarios(job_id).column("scenario_id").to_numpy()
    assert np.array_equal(ids, np.arange(30000))
    assert json.dumps(manifest)  # a readable manifest


def test_resume_refuses_a_finished_job(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    rec = reg.create_job(None, "x", {}, "h", 1, 1)
    reg.set_status(rec.id, JobStatus.CANCELLED)
    out = subprocess.run(
        [
            EDT,
            "resume",
            rec.id,
            "--registry",
            f"sqlite:///{tmp_path / 'r.db'}",
            "--storage",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "cancelled" in out.stderr
