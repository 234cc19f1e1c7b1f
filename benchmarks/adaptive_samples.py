"""Samples an adaptive run needs to pin mean NPV to the same half-width: MC vs LHS vs RQMC.

For the bundled Monte Carlo example (examples/jobs/methanol_mc.yaml), each method runs with
`until: {statistic: mean, half_width: H}` through the same stopping rule as the cluster
(`jobs.adaptive.evaluate_until`, the chunk evaluator in this process, no Ray):

- plain Monte Carlo: normal-approximation interval of independent draws;
- LHS, adaptive: a prefix of one Latin hypercube of max_samples points. A prefix is not
  stratified, so it behaves like plain MC (its iid interval stays honest, slightly
  conservative); LHS gains only when the whole design is used;
- LHS, one fixed design: what a single design of n points would need, from the variance of
  its mean measured over independent designs (one design cannot measure its own error, so
  this count is known only after the fact; shown for reference);
- scrambled Sobol (randomised QMC): 16 independently scrambled replicates, interval from their
  spread (t with 15 degrees of freedom).

The ratio MC / RQMC is what adaptive sampling with Sobol saves on this model.

    python benchmarks/adaptive_samples.py [--half-width 0.2] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from jobs.adaptive import evaluate_until
from jobs.evaluate import ChunkEvaluator
from jobs.spec import PreparedJob, prepare_job

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jobs" / "methanol_mc.yaml"
CAP = 16 * 8192


def adaptive_job(method: str, half_width: float, seed: int) -> PreparedJob:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["seed"] = seed
    scenarios = data["scenarios"]
    scenarios.pop("samples")
    scenarios["method"] = method
    scenarios["until"] = {"statistic": "mean", "half_width": half_width, "max_samples": CAP}
    return prepare_job(data)


def lhs_half_width(size: int, designs: int) -> float:
    """95% half-width of one LHS design's mean NPV, its error measured over independent designs."""
    means = []
    for seed in range(designs):
        data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
        data["seed"] = 1000 + seed
        data["scenarios"]["samples"] = size
        data["scenarios"]["method"] = "lhs"
        table = ChunkEvaluator(prepare_job(data)).evaluate(np.arange(size)).scenarios
        means.append(float(np.nanmean(table.column("npv").to_numpy(zero_copy_only=False))))
    return float(stats.norm.ppf(0.975)) * float(np.std(means, ddof=1))


def lhs_fixed_design(half_width: float, designs: int) -> int:
    """Smallest design size (doubling, then bisection) whose half-width meets the target."""
    hi = 16
    while lhs_half_width(hi, designs) > half_width:
        hi *= 2
    lo = hi // 2
    while hi - lo > max(1, hi // 16):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if lhs_half_width(mid, designs) <= half_width else (mid, hi)
    return hi


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half-width", type=float, default=0.2, help="target on mean NPV")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lhs-designs", type=int, default=16)
    args = ap.parse_args()
    h = args.half_width
    print(f"{EXAMPLE.name}: samples to reach mean NPV +-{h} at 95% ({args.seeds} seeds)")
    counts: dict[str, list[int]] = {}
    for method, label in (("mc", "plain MC"), ("lhs", "LHS, adaptive"), ("sobol", "RQMC")):
        counts[method] = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            mon = evaluate_until(adaptive_job(method, h, 20261122 + seed), 1000).monitor
            (row,) = mon.latest
            assert mon.stop_n is not None
            counts[method].append(mon.stop_n)
            print(
                f"  {label:<14} seed {seed}: n = {mon.stop_n:>6,}  mean {row['estimate']:8.3f}"
                f" [{row['lower']:.3f}, {row['upper']:.3f}]  half-width {row['half_width']:.3f}"
                f"{'' if mon.met else '  (max_samples reached)'}  {time.perf_counter() - t0:.1f} s"
            )
    lhs_fixed = lhs_fixed_design(h, args.lhs_designs)
    print(
        f"  LHS, one fixed design: ~{lhs_fixed:,} points (its error measured over"
        f" {args.lhs_designs} independent designs of each size tried)"
    )
    med = {m: statistics.median(c) for m, c in counts.items()}
    print(
        f"median samples: MC {med['mc']:,.0f}, LHS adaptive {med['lhs']:,.0f},"
        f" LHS fixed ~{lhs_fixed:,.0f}, RQMC {med['sobol']:,.0f}"
    )
    print(
        f"mc_over_rqmc={med['mc'] / med['sobol']:.1f} mc_over_lhs_adaptive="
        f"{med['mc'] / med['lhs']:.2f} mc_over_lhs_fixed={med['mc'] / lhs_fixed:.2f}"
    )


if __name__ == "__main__":
    main()
