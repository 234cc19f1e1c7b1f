"""cluster/slurm/edt-ray.sbatch under a real (single-node, loopback) Slurm: munged, slurmctld
and slurmd from Debian's packages, configured and started by the test (`tests.slurm_local`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.registry import Registry
from jobs.status import JobStatus
from tests.slurm_local import LocalSlurm, missing_binaries
from tests.support import wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "slurm" / "edt-ray.sbatch"


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[LocalSlurm]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm not installed ({', '.join(missing)}): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the test's Slurm daemons run as root (SlurmUser=root)")
    cluster = LocalSlurm(tmp_path / "slurm")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _env(slurm: LocalSlurm, tmp: Path, **extra: str) -> dict[str, str]:
    """What `sbatch` exports to the script: this venv first in PATH, settings in EDT_*."""
    env = slurm.env()
    env.pop("EDT_TEST_GATE_DIR", None)
    env.pop("RAY_ADDRESS", None)
    return env | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "EDT_REGISTRY": f"sqlite:///{tmp / 'registry.db'}",
        "EDT_STORAGE": str(tmp / "res"),
        "EDT_RAY_HEAD_IP": "127.0.0.1",
        "RAY_AUTH_MODE": "disabled",
        "EDT_FAULT_TIMEOUT": "30",
        **extra,
    }


def _ids(tmp: Path, job_id: str) -> np.ndarray:
    table = pq.read_table(tmp / "res" / "jobs" / job_id / "scenarios")
    return np.sort(table.column("scenario_id").to_numpy())


def _only_job(tmp: Path) -> str:
    (record,) = Registry(f"sqlite:///{tmp / 'registry.db'}").list_jobs()
    return str(record.id)


def test_sbatch_runs_an_example_job_on_a_ray_cluster_of_its_allocation(
    tmp_path: Path, slurm: LocalSlurm
) -> None:
    job = ROOT / "examples" / "jobs" / "methanol_tornado.yaml"
    out = tmp_path / "slurm-%j.out"
    sid = slurm.sbatch(
        "-c", "2", f"--output={out}", str(SCRIPT), str(job),
        env=_env(slurm, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: slurm.finished(sid), 600, "the Slurm job to end")
    info, log = slurm.job(sid), (tmp_path / f"slurm-{sid}.out").read_text()
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), log
    job_id = _only_job(tmp_path)
    assert f"edt-ray: job {job_id}" in log
    record = Registry(f"sqlite:///{tmp_path / 'registry.db'}").get(job_id)
    assert record.status is JobStatus.SUCCEEDED
    n = yaml.safe_load(job.read_text())
    assert record.total_scenarios == 1 + 2 * len(n["scenarios"]["parameters"])
    np.testing.assert_array_equal(_ids(tmp_path, job_id), np.arange(record.total_scenarios))
    assert (tmp_path / "res" / "jobs" / job_id / "manifest.json").exists()


def test_scancel_leaves_the_job_interrupted_and_a_new_allocation_resumes_it(
    tmp_path: Path, slurm: LocalSlurm
) -> None:
    job = yaml.safe_load((ROOT / "examples/jobs/methanol_optimize.yaml").read_text())
    params = job["scenarios"]["parameters"]
    for name in ("markets.gas_supply.price", "markets.methanol_sales.price"):
        params[name] = params[name][:2]
    job["chunk_size"] = 2  # 16 scenarios, 8 chunks
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    gate = tmp_path / "gate"
    gate.mkdir()
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    env = _env(slurm, tmp_path, EDT_TEST_GATE_DIR=str(gate))
    out = f"--output={tmp_path / 'slurm-%j.out'}"
    sid = slurm.sbatch("-c", "2", out, str(SCRIPT), "job.yaml", env=env, cwd=tmp_path)
    db = tmp_path / "registry.db"
    wait_for(lambda: db.exists() and registry.list_jobs(), 300, "the job registered")
    job_id = _only_job(tmp_path)
    wait_for(lambda: 0 in registry.committed_chunks(job_id), 300, "chunk 0 committed")
    slurm.scancel(sid)  # later chunks wait in the gate: mid-job
    wait_for(lambda: slurm.finished(sid), 120, "the Slurm job to end")
    log = (tmp_path / f"slurm-{sid}.out").read_text()
    assert slurm.job(sid)["JobState"] == "CANCELLED", log
    record = registry.get(job_id)
    assert record.status is JobStatus.INTERRUPTED, log  # recorded, not only shown
    assert f"Slurm job {sid}" in (record.error or "")
    assert f"--resume {job_id}" in log
    committed = registry.committed_chunks(job_id)
    assert 0 in committed and len(committed) < 8

    (gate / "open").touch()
    again = slurm.sbatch("-c", "2", out, str(SCRIPT), "--resume", job_id, env=env, cwd=tmp_path)
    wait_for(lambda: slurm.finished(again), 600, "the resuming Slurm job to end")
    info, log = slurm.job(again), (tmp_path / f"slurm-{again}.out").read_text()
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), log
    assert registry.get(job_id).status is JobStatus.SUCCEEDED
    np.testing.assert_array_equal(_ids(tmp_path, job_id), np.arange(16))
