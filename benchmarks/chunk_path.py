"""Throughput of the whole chunk path on the Monte Carlo example, in scenarios per second.

Goal (issue 11, goal 2): >= 100,000 scenarios/s per core for `ChunkEvaluator.evaluate`
(sampling, with and without the projects, metrics, Arrow table) plus writing the Parquet part,
on `examples/jobs/methanol_mc.yaml`. One process, one core.

Prints the first chunk separately (it includes numba's compile or cache load), then the best
of `--repeat` passes over `--chunks` chunks of `--chunk-size` scenarios, and a per-stage split.

`--against REF` measures the same thing on another commit (checked out with `git archive` into
a temporary directory, run in a subprocess with that tree first on the path), alternating with
this tree, and prints the ratio: both sides are measured in the same run on the same machine
load.

    python benchmarks/chunk_path.py [--chunk-size 12500] [--chunks 4] [--repeat 3]
    python benchmarks/chunk_path.py --against 21aca1c
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "jobs" / "methanol_mc.yaml"


def measure(chunk_size: int, chunks: int, repeat: int) -> dict[str, Any]:
    """Seconds of the first chunk and scenarios/s of the best pass, on whichever tree imports."""
    # Imported here so that a subprocess measuring another tree imports that tree's code.
    from edt_compute import finance
    from edt_compute.simulation import simulate
    from jobs.evaluate import ChunkEvaluator
    from jobs.spec import prepare_job
    from jobs.storage import ResultStore

    doc = yaml.safe_load(JOB.read_text())
    doc["scenarios"]["samples"] = chunk_size * chunks
    job = prepare_job(doc, base_dir=JOB.parent)
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(tmp)
        t0 = time.perf_counter()
        first = ChunkEvaluator(job).evaluate(np.arange(chunk_size, dtype=np.int64))
        store.write_part("bench", first.scenarios, 0)
        first_seconds = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeat):
            ev = ChunkEvaluator(job)  # a fresh evaluator per pass: per-job caches count
            t0 = time.perf_counter()
            for k in range(chunks):
                ids = np.arange(k * chunk_size, (k + 1) * chunk_size, dtype=np.int64)
                store.write_part("bench", ev.evaluate(ids).scenarios, k)
            best = min(best, time.perf_counter() - t0)

        # Stage split on one chunk (best of `repeat`), through the evaluator's own steps.
        ev = ChunkEvaluator(job)
        ids = np.arange(chunk_size, dtype=np.int64)
        local = np.arange(chunk_size)
        stages: dict[str, float] = {}

        def timed(name: str, step: Callable[[], Any]) -> Any:
            best, value = float("inf"), None
            for _ in range(repeat):
                t0 = time.perf_counter()
                value = step()
                best = min(best, time.perf_counter() - t0)
            stages[name] = best
            return value

        inputs = timed("sampling", lambda: ev.inputs(ids))
        cm = timed("compile_model", lambda: ev._compile(inputs, local))
        with_p = timed("simulate_with", lambda: simulate(cm, ev._builds(cm)))
        without = timed("simulate_without", lambda: simulate(cm))
        cash = np.ascontiguousarray(with_p.fcf - without.fcf)
        timed("metrics", lambda: finance.metrics(cash, cm.discount_rate, cm.periods_per_year))
        table = timed("evaluate_total", lambda: ev.evaluate(ids).scenarios)
        timed("parquet_part", lambda: store.write_part("bench", table, 0))
    return {
        "first_chunk_seconds": first_seconds,
        "scenarios_per_second": chunk_size * chunks / best,
        "stages": stages,
    }


def _print(tag: str, res: dict[str, Any], chunk_size: int) -> None:
    print(
        f"{tag:10s} {res['scenarios_per_second']:10,.0f} scenarios/s (one core);"
        f" first chunk {res['first_chunk_seconds']:.2f} s"
    )
    split = "  ".join(
        f"{k} {v * 1e6 / chunk_size:.2f}" for k, v in res["stages"].items()
    )
    print(f"{'':10s} us/scenario: {split}")


def _other_tree(ref: str, tmp: str) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return Path(tmp)


def _measure_in(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [
        sys.executable, __file__, "--json",
        "--chunk-size", str(args.chunk_size), "--chunks", str(args.chunks),
        "--repeat", str(args.repeat),
    ]
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk-size", type=int, default=12500)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", help="git ref to measure side by side (e.g. 21aca1c)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations with --against")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        print(json.dumps(measure(args.chunk_size, args.chunks, args.repeat)))
        return
    if not args.against:
        res = _measure_in(ROOT, args)
        _print("this tree", res, args.chunk_size)
        rate = res["scenarios_per_second"]
        print(f"chunk_path_scenarios_per_second={rate:.4g} goal=1e5 ratio_to_goal={rate / 1e5:.2f}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        other = _other_tree(args.against, tmp)
        ratios = []
        for _ in range(args.rounds):
            new, old = _measure_in(ROOT, args), _measure_in(other, args)
            _print("this tree", new, args.chunk_size)
            _print(args.against, old, args.chunk_size)
            ratios.append(new["scenarios_per_second"] / old["scenarios_per_second"])
        print(f"ratio_vs_{args.against}=" + ",".join(f"{r:.1f}" for r in ratios))


if __name__ == "__main__":
    main()
