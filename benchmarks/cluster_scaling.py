"""Beyond one machine: the optimize example on a two-node Ray cluster vs a one-node cluster.

Both clusters run on this machine at once (`tests.ray_nodes.RayNodes`: one raylet per node,
`--num-cpus 1`, with root each worker node in its own network namespace), so the runs
alternate, one-node then two-node, under the same load. Each run is `edt run --address` on
a fresh registry and storage, after one unmeasured warm-up job on each cluster; its time is the
supervisor's dispatch wall time (Ray start and connection excluded; the job's actors' start
included, as every job pays it). The per-chunk lineage in manifest.json (node, task seconds) gives the
balance between the nodes: busy seconds per node and the idle share,
1 - sum(task seconds) / (dispatch wall x nodes).

    python benchmarks/cluster_scaling.py [--per-axis 4] [--chunk-size 2] [--repeat 1]

`--per-axis K` keeps the example's three grid axes with K values each (K <= 4: the example's
first K; more: K values evenly spread over the example's range), so K^3 MILP scenarios.
Goal: two nodes >= 1.8x one node, with one CPU per node.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.ray_nodes: the same cluster the multi-node tests use

from tests.ray_nodes import RAY_ENV, RayNodes  # noqa: E402

EDT = str(Path(sys.executable).parent / "edt")
GOAL = 1.8


def optimize_job(per_axis: int, chunk_size: int) -> dict[str, Any]:
    job = yaml.safe_load((ROOT / "examples/jobs/methanol_optimize.yaml").read_text())
    params = job["scenarios"]["parameters"]
    for name, values in params.items():
        if per_axis <= len(values):
            params[name] = values[:per_axis]
        else:
            spread = np.linspace(min(values), max(values), per_axis)
            params[name] = [round(float(v), 6) for v in spread]
    job["chunk_size"] = chunk_size
    return dict(job)


def run_on(address: str, job: dict[str, Any], tmp: Path, tag: str) -> dict[str, Any]:
    """`edt run --address` on a fresh registry and storage; returns the job's manifest."""
    path = tmp / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(job))
    storage, registry = tmp / f"{tag}-results", f"sqlite:///{tmp / tag}.db"
    args = [EDT, "run", str(path), "--address", address, "--storage", str(storage)]
    out = subprocess.run(
        [*args, "--registry", registry], capture_output=True, text=True, env=RAY_ENV
    )
    if out.returncode != 0:
        raise RuntimeError(f"edt run on {address} exited {out.returncode}: {out.stderr[-3000:]}")
    (job_dir,) = (storage / "jobs").iterdir()
    return dict(json.loads((job_dir / "manifest.json").read_text()))


def balance(
    manifest: dict[str, Any], names: dict[str, str], nodes: int
) -> tuple[dict[str, Any], float]:
    """Per node: chunks, task and compute seconds, idle share; and the cluster's idle share."""
    wall = float(manifest["dispatch_wall_seconds"])
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for c in manifest["chunks"]:
        node = per[names.get(c["node"], c["node"][:8])]
        node["chunks"] += 1
        node["task_seconds"] += c.get("task_seconds", 0.0)
        node["compute_seconds"] += c.get("compute_seconds", 0.0)
    for node in per.values():
        node["idle_share"] = 1.0 - node["task_seconds"] / wall
    busy = sum(n["task_seconds"] for n in per.values())
    return {k: dict(v) for k, v in per.items()}, 1.0 - busy / (wall * nodes)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_cluster(workdir: Path, workers: int) -> RayNodes:
    workdir.mkdir()
    nodes = RayNodes(workdir)
    nodes.start_head()
    for _ in range(workers):
        nodes.add_worker()
    return nodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-axis", type=int, default=4, help="values per grid axis (K^3 scenarios)")
    ap.add_argument("--chunk-size", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="alternating pairs of runs")
    args = ap.parse_args()
    job = optimize_job(args.per_axis, args.chunk_size)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clusters: list[RayNodes] = []
        try:
            t0 = time.perf_counter()
            one = start_cluster(tmp / "one", 0)
            clusters.append(one)
            two = start_cluster(tmp / "two", 1)
            clusters.append(two)
            print(
                f"clusters up in {time.perf_counter() - t0:.0f} s ({two.kind}); load {load_average()}"
            )
            names = dict(two.alive_nodes())
            # A first job on a cluster also warms the page cache and numba's cache files:
            # one small unmeasured job on each, so that neither measured run pays for it.
            warm = optimize_job(1, 1)
            for tag, cluster in (("one", one), ("two", two)):
                run_on(cluster.address, warm, tmp, f"warm-{tag}")
            walls: dict[str, list[float]] = {"one": [], "two": []}
            idle: list[float] = []
            busy: dict[str, list[float]] = {"one": [], "two": []}
            for rep in range(args.repeat):
                for tag, cluster in (("one", one), ("two", two)):
                    m = run_on(cluster.address, job, tmp, f"{tag}{rep}")
                    walls[tag].append(float(m["dispatch_wall_seconds"]))
                    print(
                        f"{tag} node(s), run {rep + 1}: {m['total_scenarios']} scenarios in"
                        f" {len(m['chunks'])} chunks, {m['workers']} worker(s),"
                        f" dispatch wall {walls[tag][-1]:.1f} s; load {load_average()}"
                    )
                    per, share = balance(m, names, len(cluster.nodes))
                    busy[tag].append(sum(f["compute_seconds"] for f in per.values()))
                    if tag == "two":
                        idle.append(share)
                        for node, figures in sorted(per.items()):
                            print(
                                f"  node {node}: {figures['chunks']:.0f} chunks, busy"
                                f" {figures['task_seconds']:.1f} s (compute"
                                f" {figures['compute_seconds']:.1f} s), idle"
                                f" {figures['idle_share']:.1%}"
                            )
                        print(f"  cluster idle share {share:.1%}")
        finally:
            for cluster in clusters:
                cluster.stop()
    ratios = [a / b for a, b in zip(walls["one"], walls["two"], strict=True)]
    print(f"two vs one node per pair: {', '.join(f'{r:.2f}x' for r in ratios)}")
    # Chunk compute seconds summed over nodes: equal in both runs on an idle machine; more on
    # two nodes when the machine's cores are shared (other jobs), which caps the ratio.
    inflation = [b / a for a, b in zip(busy["one"], busy["two"], strict=True)]
    print(
        f"compute seconds, two nodes / one node per pair: {', '.join(f'{x:.2f}' for x in inflation)}"
    )
    print(
        f"cluster_scaling two_vs_one={statistics.median(ratios):.2f} goal={GOAL}"
        f" idle_share={statistics.median(idle):.3f}"
    )


if __name__ == "__main__":
    main()
