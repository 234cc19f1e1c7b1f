"""Build once, re-solve many, against rebuilding the Pyomo model per scenario (methanol_ammonia).

N scenarios vary the gas price, the methanol price and the debottleneck's capex by uniform
multipliers (fixed seed), so some scenarios build the project and some do not.
(a) the naive way: per scenario, build the Pyomo model with the scenario's numbers and solve it
    through Pyomo's standard `highs` solver interface, then read the plan back.
(b) `solvers.PlanningModel`: built once (its build time is counted), then per scenario only
    changed costs, bounds and coefficients go to a live HiGHS instance through highspy.
Both use threads=1 and the same time limit and relative MIP gap; they run interleaved, scenario
by scenario, so that both see the same load on a shared machine. The last line is
`speedup_vs_rebuild=<x> inside_highs=<y>`: x = wall(a) / wall(b); y = the share of wall(b)
spent inside HiGHS run(). Goal: x >= 5 and y >= 0.8.

    python benchmarks/milp_resolve.py [N] [--seed 0] [--time-limit 10] [--gap 1e-4]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyomo.environ as pyo

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.library import load_model
from solvers import (
    MilpStructure,
    PlanningModel,
    SolverOptions,
    build_formulation,
    scenario_params,
)

GOAL_SPEEDUP, GOAL_INSIDE = 5.0, 0.8


def scenarios(n: int, seed: int) -> CompiledModel:
    model = load_model("methanol_ammonia")
    rng = np.random.default_rng(seed)
    return compile_model(
        model,
        n,
        scalars={
            "markets.gas_supply.price": 0.11 * rng.uniform(0.6, 1.6, n),
            "markets.methanol_sales.price": 0.32 * rng.uniform(0.6, 1.4, n),
            "projects.methanol_debottleneck.capex": 50.0 * rng.uniform(0.5, 4.0, n),
        },
    )


def rebuild_one(
    st: MilpStructure, cm: CompiledModel, s: int, opts: SolverOptions
) -> tuple[float, float, float]:
    """(a) for one scenario: objective, Pyomo build seconds, Pyomo solve-and-read seconds."""
    t0 = time.perf_counter()
    m = build_formulation(st, scenario_params(st, cm, s))
    t1 = time.perf_counter()
    pyo.SolverFactory("highs").solve(
        m, timelimit=opts.time_limit, options={"threads": 1, "mip_rel_gap": opts.mip_gap}
    )
    # Read the plan back as (b) does, so both ends hold the same results.
    _ = [v.value for v in m.x.values()], [v.value for v in m.v.values()]
    _ = [v.value for v in m.build.values()]
    return float(pyo.value(m.npv)), t1 - t0, time.perf_counter() - t1


@dataclass
class Timings:
    obj_a: np.ndarray
    obj_b: np.ndarray
    wall_a: float = 0.0  # (a) all of it
    build_a: float = 0.0  # (a) building the Pyomo models
    build_once: float = 0.0  # (b) building the PlanningModel
    wall_b: float = 0.0  # (b) all of it, build_once included
    inside: float = 0.0  # (b) inside HiGHS run()
    built: int = 0  # scenarios in which (b) builds the project


def run(cm: CompiledModel, opts: SolverOptions) -> Timings:
    """Both paths, interleaved per scenario so that both see the same load on the machine."""
    st = MilpStructure.from_model(cm.model)
    out = Timings(np.full(cm.S, np.nan), np.full(cm.S, np.nan))
    t0 = time.perf_counter()
    pm = PlanningModel(cm.model, opts)
    out.build_once = out.wall_b = time.perf_counter() - t0
    for s in range(cm.S):
        t0 = time.perf_counter()
        out.obj_a[s], build, _ = rebuild_one(st, cm, s, opts)
        t1 = time.perf_counter()
        res = pm.solve(cm, s)
        out.wall_b += time.perf_counter() - t1
        out.wall_a += t1 - t0
        out.build_a += build
        out.inside += res.solve_seconds
        out.obj_b[s] = res.objective
        out.built += int(res.builds[0] >= 0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=40, help="scenarios (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--gap", type=float, default=1e-4)
    args = parser.parse_args(argv)
    opts = SolverOptions(time_limit=args.time_limit, mip_gap=args.gap)
    cm = scenarios(args.n, args.seed)

    r = run(cm, opts)
    n = cm.S
    print(
        f"methanol_ammonia: {n} scenarios, threads=1, gap {args.gap}, time limit {args.time_limit}s"
    )
    print(
        f"(a) rebuild per scenario: {r.wall_a:.2f}s = {1e3 * r.wall_a / n:.1f} ms/scenario"
        f" (Pyomo build {1e3 * r.build_a / n:.1f},"
        f" Pyomo highs solve and read {1e3 * (r.wall_a - r.build_a) / n:.1f})"
    )
    overhead = r.wall_b - r.build_once - r.inside
    print(
        f"(b) build once, re-solve: {r.wall_b:.2f}s = {1e3 * r.wall_b / n:.1f} ms/scenario"
        f" (build once {r.build_once:.2f}s, HiGHS run {1e3 * r.inside / n:.1f},"
        f" updates and plan extraction {1e3 * overhead / n:.2f})"
    )
    both = np.isfinite(r.obj_a) & np.isfinite(r.obj_b)
    rel = np.abs(r.obj_a - r.obj_b) / np.maximum(1.0, np.abs(r.obj_a))
    print(
        f"objectives: {both.sum()}/{n} solved by both, max relative difference"
        f" {rel[both].max():.2e} (MIP gap {args.gap}); project built in {r.built}/{n}"
    )
    x = r.wall_a / r.wall_b
    y = r.inside / r.wall_b
    if x < GOAL_SPEEDUP or y < GOAL_INSIDE:
        print(f"below goal (speedup >= {GOAL_SPEEDUP}, inside_highs >= {GOAL_INSIDE})")
    print(f"speedup_vs_rebuild={x:.2f} inside_highs={y:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
