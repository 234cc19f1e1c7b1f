"""Decide mode on the actor pool: the example job's decision search on 1 and 2 workers.

Runs `jobs.decide.decide` on examples/jobs/methanol_decide.yaml with N training scenarios
(default 1,000) and M out-of-sample ones, once on a pool of 1 actor and once on 2 (embedded
Ray, 2 CPUs), one after the other on the same machine. Prints per run the wall time, the MILP
solves per second and the decision, then a last line

    decide_wall_1=<s> decide_wall_2=<s> ratio=<wall_1 / wall_2> solves_per_second_2=<r>
    pruning_saved=<share of candidate evaluations that pruning avoided>

(one line). The two runs must give the same decision; the script fails otherwise.

    python benchmarks/decide.py [--samples 1000] [--test-samples 1000] [--block-size 25]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.decide import ray_runner
from cluster.pool import start_pool, stop_pool
from cluster.runtime import connect, shutdown
from jobs.decide import decide
from jobs.decide_tasks import DecisionEvaluator
from jobs.spec import PreparedJob, prepare_job
from solvers import compile_milp

ROOT = Path(__file__).resolve().parents[1]


def job_of(samples: int, test_samples: int, block: int) -> PreparedJob:
    doc = yaml.safe_load((ROOT / "examples/jobs/methanol_decide.yaml").read_text())
    doc["scenarios"]["samples"] = samples
    doc["decide"]["out_of_sample"]["samples"] = test_samples
    doc["decide"]["block_size"] = block
    return prepare_job(doc)


def run(job: PreparedJob, workers: int, store: str) -> tuple[float, dict[str, Any]]:
    milp = compile_milp(job.model)
    actors = start_pool(store, workers)
    try:
        ray.get([a.pid.remote() for a in actors])  # started before the clock
        doc_ref, milp_ref = ray.put(job.document()), ray.put(milp)
        t0 = time.perf_counter()
        doc = decide(
            job, ray_runner(actors, job.spec_hash, doc_ref, milp_ref), DecisionEvaluator(job, milp)
        )
        return time.perf_counter() - t0, doc
    finally:
        stop_pool(actors)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--test-samples", type=int, default=1000)
    ap.add_argument("--block-size", type=int, default=25)
    args = ap.parse_args()
    job = job_of(args.samples, args.test_samples, args.block_size)
    connect(num_cpus=2)
    try:
        walls, docs = {}, {}
        for workers in (1, 2):
            # Decide tasks write nothing; the pool only needs a store URL.
            walls[workers], docs[workers] = run(job, workers, tempfile.mkdtemp())
            d = docs[workers]
            solves = d["solves"]["base"] + d["solves"]["evaluation"]
            print(
                f"workers={workers} wall={walls[workers]:.2f}s solves={solves}"
                f" solves_per_second={solves / walls[workers]:.1f} schedule={d['schedule']}"
                f" method={d['method']} objective={d['objective']:.4f}"
                f" vss={d['vss']:.4f} evpi={d['evpi']:.4f}"
            )
    finally:
        shutdown()
    if docs[1] != docs[2]:
        print("decision differs between 1 and 2 workers", file=sys.stderr)
        return 1
    d = docs[2]
    spent = d["solves"].get("candidate_solves")
    full = d["solves"].get("candidate_solves_without_pruning")
    saved = 1 - spent / full if spent is not None and full else 0.0
    solves = d["solves"]["base"] + d["solves"]["evaluation"]
    print(
        f"decide_wall_1={walls[1]:.2f} decide_wall_2={walls[2]:.2f}"
        f" ratio={walls[1] / walls[2]:.2f} solves_per_second_2={solves / walls[2]:.1f}"
        f" pruning_saved={saved:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
