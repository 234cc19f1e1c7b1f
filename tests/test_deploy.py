"""The team set-up: a Ray cluster started with `ray start` and a PostgreSQL registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.supervisor import JobRunner
from jobs.registry import Registry
from jobs.spec import prepare_job
from jobs.status import JobStatus
from jobs.storage import ResultStore

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
JOB = {
    "name": "deploy-test",
    "model": "steel_minimill",
    "scenarios": {
        "kind": "grid",
        "parameters": {"markets.rebar_sales.price": [0.6, 0.65, 0.7, 0.75]},
    },
}


def test_edt_run_on_a_running_cluster_by_address(tmp_path: Path, ray_head: str) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "EDT_ADDRESS": ray_head}
    out = subprocess.run(
        [
            str(BIN / "edt"),
            "run",
            str(tmp_path / "job.yaml"),
            "--storage",
            str(tmp_path / "res"),
            "--registry",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    (job_dir,) = (tmp_path / "res" / "jobs").iterdir()
    manifest = json.loads((job_dir / "manifest.json").read_text())
    assert sum(c["rows"] for c in manifest["chunks"]) == 4
    # The chunks ran on that cluster's node, not on a private embedded instance.
    probe = "import ray; ray.init(address='%s'); print(ray.get_runtime_context().get_node_id())"
    head_node = subprocess.run(
        [sys.executable, "-c", probe % ray_head],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()[-1]
    assert {c["node"] for c in manifest["chunks"]} == {head_node}


@pytest.mark.postgres
@pytest.mark.usefixtures("ray_local")
def test_a_job_with_its_registry_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    runner = JobRunner(Registry(pg_url), ResultStore(str(tmp_path / "res")), workers=1)
    rec = runner.submit(prepare_job(JOB), chunk_size=2)
    assert runner.run(rec.id).status == JobStatus.SUCCEEDED
    assert Registry(pg_url).committed_chunks(rec.id) == {0, 1}
