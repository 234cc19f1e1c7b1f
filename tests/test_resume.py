"""Jobs that outlive their process: an embedded `edt run` killed, then `edt resume`; on a
`ray start` cluster, `edt run` and then the supervisor's own process killed mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cluster.reaper import descendants
from jobs.registry import Registry
from jobs.status import JobStatus
from jobs.storage import ResultStore
from tests.support import wait_for

pytestmark = pytest.mark.slow
EDT = str(Path(sys.executable).parent / "edt")
JOB = {
    "name": "resume-test",
    "model": "methanol_ammonia",
    "seed": 3,
    "scenarios": {
        "kind": "monte_carlo",
        "samples": 6000,
        "parameters": {
            "markets.methanol_sales.price": {"dist": "uniform", "low": 0.25, "high": 0.4}
        },
    },
}


def _alive(seen: dict[int, int]) -> list[int]:
    alive = []
    for pid, start in seen.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[19]) == start:
            alive.append(pid)
    return alive


def _status(registry_url: str, job_id: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [EDT, "status", job_id, "--registry", registry_url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return dict(json.loads(out.stdout))


def _run_until_first_chunk(
    tmp_path: Path, *options: str
) -> tuple[subprocess.Popen[bytes], Registry, str, dict[str, str]]:
    """`edt run` of JOB (chunks >= 1 held by the gate) until chunk 0 is committed: the running
    driver, the registry, the job id and the environment."""
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    registry_url = f"sqlite:///{tmp_path / 'r.db'}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(
        [
            EDT,
            "run",
            str(tmp_path / "job.yaml"),
            "--chunk-size",
            "1000",
            *options,
            "--storage",
            str(tmp_path / "results"),
            "--registry",
            registry_url,
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    reg = Registry(registry_url)
    try:
        wait_for(lambda: (tmp_path / "r.db").exists() and bool(reg.list_jobs()), what="job row")
        job_id = reg.list_jobs()[0].id
        wait_for(lambda: reg.committed_chunks(job_id) == {0}, what="first chunk")
    except BaseException:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        raise
    return driver, reg, job_id, env


def test_a_killed_embedded_run_is_interrupted_cleaned_up_and_resumed(
    tmp_path: Path, gate: Path
) -> None:
    driver, reg, job_id, env = _run_until_first_chunk(tmp_path, "--workers", "1")
    registry_url = reg.url
    try:
        seen = descendants(driver.pid)
        assert any("raylet" in Path(f"/proc/{p}/cmdline").read_text() for p in _alive(seen))
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver alone, as the OOM killer would
        driver.wait()
    wait_for(lambda: not _alive(seen), timeout=60, what="every Ray process of the run gone")
    shown = _status(registry_url, job_id, env)
    assert shown["status"] == "interrupted" and "edt resume" in shown["note"]
    before = len(reg.committed_chunks(job_id))
    assert before == 1 and reg.get(job_id).total_chunks == 6

    (gate / "open").touch()
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = subprocess.run(
        [EDT, "resume", job_id, "--registry", registry_url],
        cwd=other,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    store = ResultStore(str(tmp_path / "results"))
    manifest = store.read_json(job_id, "manifest.json")
    assert manifest["recomputed_chunks_this_run"] == 6 - before
    assert reg.get(job_id).status == JobStatus.SUCCEEDED
    ids = store.read_scenarios(job_id).column("scenario_id").to_numpy()
    assert np.array_equal(ids, np.arange(6000))
    assert not (other / "edt-data").exists()


def test_resume_refuses_a_finished_job(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    rec = reg.create_job(None, "x", {}, "h", 1, 1)
    reg.set_status(rec.id, JobStatus.CANCELLED)
    out = subprocess.run(
        [EDT, "resume", rec.id, "--registry", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "cancelled" in out.stderr


def test_resume_refuses_a_storage_that_is_not_the_jobs(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    rec = reg.create_job(None, "x", {}, "h", 1, 1, storage=str(tmp_path / "a"))
    reg.set_status(rec.id, JobStatus.INTERRUPTED, error="test")
    out = subprocess.run(
        [
            EDT,
            "resume",
            rec.id,
            "--registry",
            f"sqlite:///{tmp_path / 'r.db'}",
            "--storage",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert str(tmp_path / "a") in out.stderr and str(tmp_path / "b") in out.stderr


def test_on_a_cluster_the_job_survives_its_edt_run_and_its_supervisor_process(
    tmp_path: Path, gate: Path, ray_head: str
) -> None:
    driver, reg, job_id, _ = _run_until_first_chunk(tmp_path, "--address", ray_head)
    os.killpg(driver.pid, signal.SIGKILL)  # edt run and everything in its group
    driver.wait()
    first = reg.get(job_id).runner
    assert first is not None and reg.get(job_id).status is JobStatus.RUNNING
    os.kill(int(first.split(":")[1]), signal.SIGKILL)  # the supervisor actor's process
    wait_for(
        lambda: (reg.get(job_id).runner or first) != first,
        timeout=120,
        what="Ray restarting the supervisor, which takes its job back",
    )
    (gate / "open").touch()
    wait_for(lambda: reg.get(job_id).status.is_terminal(), timeout=300, what="job finished")
    assert reg.get(job_id).status is JobStatus.SUCCEEDED
    store = ResultStore(str(tmp_path / "results"))
    ids = store.read_scenarios(job_id).column("scenario_id").to_numpy()
    assert np.array_equal(ids, np.arange(6000))
