"""Balance simulation throughput on the bundled models, in scenario-periods per second.

Goal (issue 11, goal 1): >= 2e7 scenario-periods per second per core. Runs on one core (the
compiled kernel is single-threaded); prints the figure per model and chunk size, then the best.
Each figure is the best of --repeat runs after a warm-up call, so numba's compile (or cache
load) is not in it; the first call's seconds are printed separately.

`--against REF` measures the same on another commit (extracted with `git archive` into a
temporary directory and run in a subprocess with that tree first on the path), alternating
with this tree, and prints the ratios: both sides are measured in one run on the same load.

    python benchmarks/simulation_bench.py [--repeat 3]
    python benchmarks/simulation_bench.py --against 21aca1c
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [(name, S) for name in ("methanol_ammonia", "steel_minimill") for S in (1024, 8192, 32768)]


def measure(name: str, S: int, repeat: int) -> tuple[float, float]:
    """(scenario-periods per second, seconds of the first call) on whichever tree imports."""
    from edt_compute.compiled import compile_model
    from edt_compute.library import load_model
    from edt_compute.simulation import simulate

    model = load_model(name)
    rng = np.random.default_rng(0)
    first_market = model.markets[-2].name
    scalars = {
        f"markets.{first_market}.price": rng.uniform(0.8, 1.2, S) * model.markets[-2].price,
        f"units.{model.units[0].name}.availability": rng.uniform(0.8, 0.95, S),
    }
    cm = compile_model(model, S, scalars=scalars)
    builds = np.zeros((S, len(model.projects)), dtype=np.int64)
    t0 = time.perf_counter()
    simulate(cm, builds)  # warm-up: compiles or loads the numba cache
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        simulate(cm, builds)
        best = min(best, time.perf_counter() - t0)
    return S * cm.T / best, first


def _run(tree: Path, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--json", "--repeat", str(repeat)]
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", help="git ref to measure side by side (e.g. 21aca1c)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        rates = {}
        for i, (name, S) in enumerate(CASES):
            rate, first = measure(name, S, args.repeat)
            rates[f"{name}:{S}"] = rate
            if i == 0:
                rates["first_call_seconds"] = first
        print(json.dumps(rates))
        return
    new = _run(ROOT, args.repeat)
    old: dict[str, float] = {}
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.against], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            old = _run(Path(tmp), args.repeat)
    print(f"first call (compile or cache load, {CASES[0][0]}): {new['first_call_seconds']:.2f} s")
    best = {}
    for name, S in CASES:
        rate = new[f"{name}:{S}"]
        best[name] = max(best.get(name, 0.0), rate)
        line = f"{name:18s} S={S:6d}  {rate:12,.0f} scenario-periods/s (one core)"
        if old:
            line += f"   {args.against}: {old[f'{name}:{S}']:12,.0f}   ratio {rate / old[f'{name}:{S}']:.1f}x"
        print(line)
    worst = min(best.values())
    print(
        "best_per_model=" + ",".join(f"{k}:{v:.3g}" for k, v in best.items())
        + f" goal=2e7 ratio_to_goal={worst / 2e7:.2f} (slower model)"
    )


if __name__ == "__main__":
    main()
