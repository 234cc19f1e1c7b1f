"""Scaling on Ray: the optimize example on 1 vs 2 workers, the Monte Carlo example end to end.

Prints (issue 4):
- optimize example (64 MILP scenarios): wall seconds on 1 and 2 workers and the speed-up
  (goal >= 1.8x on this 2-core machine);
- Monte Carlo example: end-to-end scenarios per second of `edt run` (Ray start, Parquet writes
  and the summary included);
- dispatch overhead share: 1 - (sum of chunk compute time) / (dispatch wall time x workers).

    python benchmarks/scaling.py [--mc-samples 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EDT = str(Path(sys.executable).parent / "edt")


def run_cli(job: dict[str, Any], tmp: Path, workers: int, tag: str) -> tuple[float, dict[str, Any]]:
    path = tmp / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(job))
    storage, registry = tmp / f"{tag}-results", f"sqlite:///{tmp / tag}.db"
    t0 = time.perf_counter()
    subprocess.run(
        [EDT, "run", str(path), "--workers", str(workers), "--storage", str(storage), "--registry", registry],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    (job_dir,) = (storage / "jobs").iterdir()
    return wall, json.loads((job_dir / "manifest.json").read_text())


def overhead(manifest: dict[str, Any]) -> float:
    compute = sum(c.get("compute_seconds", 0.0) for c in manifest["chunks"])
    return 1.0 - compute / (manifest["dispatch_wall_seconds"] * manifest["workers"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mc-samples", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        opt = yaml.safe_load((ROOT / "examples/jobs/methanol_optimize.yaml").read_text())
        opt["chunk_size"] = 4
        _, m1 = run_cli(opt, tmp, 1, "opt1")
        _, m2 = run_cli(opt, tmp, 2, "opt2")
        w1, w2 = m1["dispatch_wall_seconds"], m2["dispatch_wall_seconds"]
        print(f"optimize example, {m1['total_scenarios']} scenarios: 1 worker {w1:.1f} s, 2 workers {w2:.1f} s (dispatch wall, Ray start excluded)")
        print(f"  dispatch overhead share: 1 worker {overhead(m1):.1%}, 2 workers {overhead(m2):.1%}")
        mc = yaml.safe_load((ROOT / "examples/jobs/methanol_mc.yaml").read_text())
        mc["scenarios"]["samples"] = args.mc_samples
        wall, m = run_cli(mc, tmp, 2, "mc")
        print(f"Monte Carlo example, {args.mc_samples} samples, 2 workers: {args.mc_samples / wall:,.0f} scenarios/s end to end ({wall:.1f} s incl. Ray start)")
        print(f"  dispatch overhead share: {overhead(m):.1%} over {len(m['chunks'])} chunks")
        print(f"speedup_2_vs_1_workers={w1 / w2:.2f} mc_scenarios_per_s={args.mc_samples / wall:.0f} mc_dispatch_overhead={overhead(m):.3f}")


if __name__ == "__main__":
    main()
