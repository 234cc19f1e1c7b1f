"""A job on a two-node Ray cluster: both nodes compute; losing a node or the whole cluster.

The cluster (`tests.ray_nodes`) has a head and a second node, each with its own raylet and one
CPU; with root the second node lives in its own network namespace (its own address). The
gate hook holds chunks until the test acts, so "mid-job" is a known point: chunks 0 and 1 are
committed (one on each node: two actors, one CPU each), later chunks wait in the gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.registry import Registry
from jobs.status import JobStatus
from tests.support import wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EDT = str(Path(sys.executable).parent / "edt")
CHUNK = 2


def _job(tmp: Path) -> Path:
    """The optimize example, on a 2 x 2 x 4 grid (16 MILP scenarios, 8 chunks)."""
    job = yaml.safe_load((ROOT / "examples/jobs/methanol_optimize.yaml").read_text())
    params = job["scenarios"]["parameters"]
    params["markets.gas_supply.price"] = params["markets.gas_supply.price"][:2]
    params["markets.methanol_sales.price"] = params["markets.methanol_sales.price"][:2]
    job["chunk_size"] = CHUNK
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _env(gate: Path | None) -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "EDT_FAULT_TIMEOUT": "60"}
    env.pop("EDT_TEST_GATE_DIR", None)
    if gate is not None:
        env["EDT_TEST_GATE_DIR"] = str(gate)
    return env


def _start_run(tmp: Path, address: str, gate: Path) -> tuple[subprocess.Popen[str], str, str]:
    """`edt run --address` following its job; returns it, the registry URL and the job id."""
    registry = f"sqlite:///{tmp / 'registry.db'}"
    args = [EDT, "run", str(_job(tmp)), "--address", address, "--storage", str(tmp / "res")]
    run = subprocess.Popen(
        [*args, "--registry", registry], stderr=subprocess.PIPE, text=True, env=_env(gate)
    )
    wait_for(lambda: (tmp / "registry.db").exists() and Registry(registry).list_jobs(), 300)
    (record,) = Registry(registry).list_jobs()
    return run, registry, record.id


def _nodes_of(registry: str, job_id: str) -> dict[int, str]:
    return {c.chunk_index: c.node for c in Registry(registry).chunks(job_id)}


def _first_two_chunks(registry: str, job_id: str, gate: Path) -> dict[int, str]:
    """Chunk 0 (never held), then chunk 1 let through: both committed."""
    wait_for(lambda: 0 in _nodes_of(registry, job_id), 300, "chunk 0 committed")
    (gate / "chunk-1").touch()
    wait_for(lambda: {0, 1} <= set(_nodes_of(registry, job_id)), 300, "chunk 1 committed")
    return _nodes_of(registry, job_id)


def _scenario_ids(tmp: Path, job_id: str) -> np.ndarray:
    table = pq.read_table(tmp / "res" / "jobs" / job_id / "scenarios")
    return np.sort(table.column("scenario_id").to_numpy())


def _manifest(tmp: Path, job_id: str) -> dict[str, Any]:
    return dict(json.loads((tmp / "res" / "jobs" / job_id / "manifest.json").read_text()))


def test_both_nodes_compute_and_a_lost_node_costs_no_scenario(
    tmp_path: Path, ray_cluster: Any
) -> None:
    cluster = ray_cluster(workers=1)
    ids = cluster.alive_nodes()
    head, second = (next(n for n, ip in ids.items() if ip == node.ip) for node in cluster.nodes)
    gate = tmp_path / "gate"
    gate.mkdir()
    run, registry, job_id = _start_run(tmp_path, cluster.address, gate)
    try:
        before = _first_two_chunks(registry, job_id, gate)
        assert set(before.values()) == {head, second}  # one actor per node, one CPU each
        # The second node's actor now holds a chunk in the gate: its raylet dies under it.
        workers = cluster.kill_raylet(cluster.nodes[1])
        wait_for(lambda: cluster.gone(workers), 120, "the lost node's workers to exit")
        (gate / "open").touch()
        _, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr
    assert Registry(registry).get(job_id).status is JobStatus.SUCCEEDED
    manifest = _manifest(tmp_path, job_id)
    nodes = {c["index"]: c["node"] for c in manifest["chunks"]}
    assert sorted(nodes) == list(range(8))
    assert set(nodes.values()) == {head, second}
    # Only chunks committed before the loss come from the lost node; the rest from the head.
    assert {k for k, n in nodes.items() if n == second} == {
        k for k, n in before.items() if n == second
    }
    # Every scenario exactly once.
    np.testing.assert_array_equal(_scenario_ids(tmp_path, job_id), np.arange(16))


def test_a_lost_cluster_leaves_the_job_interrupted_and_a_new_cluster_finishes_it(
    tmp_path: Path, ray_cluster: Any
) -> None:
    cluster = ray_cluster(workers=1)
    gate = tmp_path / "gate"
    gate.mkdir()
    run, registry, job_id = _start_run(tmp_path, cluster.address, gate)
    try:
        before = _first_two_chunks(registry, job_id, gate)
        parts = tmp_path / "res" / "jobs" / job_id / "scenarios"
        kept = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
        assert len(kept) == len(before) == 2
        # The whole cluster is lost: the head first (the supervisor lives there), then the rest.
        cluster.stop()
        status = subprocess.run(
            [EDT, "status", job_id, "--registry", registry],
            capture_output=True,
            text=True,
            env=_env(None),
            check=True,
        )
        shown = json.loads(status.stdout)
        assert shown["status"] == "interrupted"
        assert f"edt resume {job_id}" in shown["note"]
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, stderr  # interrupted, resumable
    assert f"edt resume {job_id}" in stderr

    fresh = ray_cluster(workers=1)
    resume = subprocess.run(
        [EDT, "resume", job_id, "--registry", registry, "--address", fresh.address],
        capture_output=True,
        text=True,
        env=_env(None),
        timeout=600,
    )
    assert resume.returncode == 0, resume.stderr
    assert "6 of 8 chunks to compute" in resume.stderr
    manifest = _manifest(tmp_path, job_id)
    assert manifest["recomputed_chunks_this_run"] == 6
    # The parts committed before the loss were not written again.
    assert {p.name: p.stat().st_mtime_ns for p in parts.iterdir() if p.name in kept} == kept
    np.testing.assert_array_equal(_scenario_ids(tmp_path, job_id), np.arange(16))
