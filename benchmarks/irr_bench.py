"""IRR throughput: edt_compute.finance.irr (vectorized) against numpy_financial.irr (per row).

Conventional flows (an outlay at t=0, then noisy positive returns) on ROWS x PERIODS.
numpy-financial is too slow for the full set, so it runs on a subset and its rate is scaled
up; the two are also compared on that subset. Timings are the best of --repeats runs, which
is the least disturbed by other load on the machine.

    python benchmarks/irr_bench.py [--rows 1000000] [--periods 20] [--subset 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy_financial as npf

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edt_compute.finance import irr

GOAL = 100.0


def conventional_flows(rows: int, periods: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flows = np.empty((rows, periods))
    flows[:, 0] = -100.0
    flows[:, 1:] = rng.uniform(0.0, 25.0, size=(rows, periods - 1))
    return flows


def best_time(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--periods", type=int, default=20)
    parser.add_argument("--subset", type=int, default=2000, help="rows for numpy-financial")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    flows = conventional_flows(args.rows, args.periods, args.seed)
    subset = flows[: min(args.subset, args.rows)]

    ours_s = best_time(lambda: irr(flows), args.repeats)
    ref_s = best_time(lambda: [npf.irr(row) for row in subset], args.repeats)
    ours_rate = args.rows / ours_s
    ref_rate = len(subset) / ref_s

    ours_sub = irr(subset)
    reference = np.array([npf.irr(row) for row in subset])
    diff = np.abs(ours_sub - reference)
    same_nan = bool(np.array_equal(np.isnan(ours_sub), np.isnan(reference)))

    print(f"flows: {args.rows:,} rows x {args.periods} periods (conventional)")
    print(f"edt_compute.finance.irr : {ours_rate:14,.0f} rows/s  ({ours_s:.3f} s for all rows)")
    print(
        f"numpy_financial.irr     : {ref_rate:14,.0f} rows/s  "
        f"({ref_s:.3f} s for {len(subset):,} rows; "
        f"{args.rows / ref_rate:.1f} s scaled to all rows)"
    )
    ratio = ours_rate / ref_rate
    print(f"speed-up                : {ratio:14,.1f} x  (goal >= {GOAL:.0f} x)")
    print(
        f"agreement on subset     : max |diff| = {np.nanmax(diff):.3e}, "
        f"NaN pattern identical: {same_nan}, NaN rows: {int(np.isnan(ours_sub).sum())}"
    )
    return 0 if ratio >= GOAL and same_nan and np.nanmax(diff) <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
