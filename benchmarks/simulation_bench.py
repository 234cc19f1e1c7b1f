"""Balance simulation throughput on the bundled models, in scenario-periods per second.

Goal (issue 2): >= 1e7 scenario-periods per second per core. Runs on one core (the kernel is
single-threaded numpy); prints the figure per model and chunk size, then the best.

    python benchmarks/simulation_bench.py [--scenarios 8192] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edt_compute.compiled import compile_model
from edt_compute.library import load_model
from edt_compute.simulation import simulate


def measure(name: str, S: int, repeat: int) -> float:
    model = load_model(name)
    rng = np.random.default_rng(0)
    first_market = model.markets[-2].name
    scalars = {
        f"markets.{first_market}.price": rng.uniform(0.8, 1.2, S) * model.markets[-2].price,
        f"units.{model.units[0].name}.availability": rng.uniform(0.8, 0.95, S),
    }
    cm = compile_model(model, S, scalars=scalars)
    builds = np.zeros((S, len(model.projects)), dtype=np.int64)
    simulate(cm, builds)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        simulate(cm, builds)
        best = min(best, time.perf_counter() - t0)
    return S * cm.T / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = 0.0
    for name in ("methanol_ammonia", "steel_minimill"):
        for S in (1024, 8192, 32768):
            rate = measure(name, S, args.repeat)
            best = max(best, rate)
            print(f"{name:18s} S={S:6d}  {rate:12,.0f} scenario-periods/s (one core)")
    print(f"best_scenario_periods_per_second={best:.3g} goal=1e7 ratio_to_goal={best / 1e7:.2f}")


if __name__ == "__main__":
    main()
