"""The team set-up: a Ray cluster started with `ray start` and a PostgreSQL registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


FRONT = """ray start --address={address} --num-cpus=0 --node-ip-address=127.0.0.2 \\
    --disable-usage-stats >/dev/null && python -c "$PROBE" && exec "$@"
"""
PROBE = (
    "import ray; ray.init(address='{address}', logging_level='ERROR');"
    "me = ray.get_runtime_context().get_node_id();"
    "print('attached to', *[n['NodeManagerAddress'] for n in ray.nodes() if n['NodeID'] == me])"
)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs a PID namespace (root)"
)
def test_a_host_joined_with_no_cpu_drives_a_job_that_runs_on_the_others(
    tmp_path: Path, ray_cluster: Any
) -> None:
    """The KubeRay API and scheduler pods (cluster/kuberay/edt.yaml): `ray start --num-cpus=0`,
    then an EDT driver. A PID namespace stands for the pod: a driver finds a raylet of its own
    host in the process table, and there it sees only the one it started."""
    cluster = ray_cluster(workers=0)
    (head,) = cluster.alive_nodes()
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    stores = ["--storage", str(tmp_path / "res"), "--registry", f"sqlite:///{tmp_path / 'r.db'}"]
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PROBE": PROBE.format(address=cluster.address),
    }
    pod = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c"]
    run = ["edt", "run", str(tmp_path / "job.yaml"), "--address", cluster.address, *stores]
    out = subprocess.run(
        [*pod, FRONT.format(address=cluster.address), "pod", *run],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "attached to 127.0.0.2" in out.stdout  # its own node, not the head
    (job_dir,) = (tmp_path / "res" / "jobs").iterdir()
    manifest = json.loads((job_dir / "manifest.json").read_text())
    assert sum(c["rows"] for c in manifest["chunks"]) == 4
    # Every chunk on the head, the one node with a CPU; none on the joined host.
    assert {c["node"] for c in manifest["chunks"]} == {head}
