"""One here-and-now investment decision under uncertainty: the arithmetic of decide mode.

A build schedule gives every candidate project a build period within its window, or -1 (never).
Scenarios are equally likely. For a schedule, `x[s]` is scenario s's NPV with the builds fixed
and the dispatch optimal (incremental: against the enterprise with nothing built). The
objective is `(1 - w) E[x] + w CVaR_alpha(x)`, CVaR being the mean of the worst `1 - alpha`
share of the scenarios (the Rockafellar-Uryasev value, with a fractional scenario at the cut).

The objective never falls when one scenario's NPV rises, so replacing the NPVs not yet
evaluated by upper bounds (the per-scenario optima) bounds a schedule's objective from above:
that is what lets a schedule be pruned part-way through its evaluation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from edt_compute.model import EnterpriseModel

NEVER = -1


def build_windows(model: EnterpriseModel, projects: Sequence[str]) -> list[tuple[int, int]]:
    """(earliest, latest) build period of each named project, clipped to the horizon."""
    by_name = {p.name: p for p in model.projects}
    last = model.finance.horizon - 1
    out = []
    for name in projects:
        p = by_name[name]
        latest = last if p.latest_period is None else min(p.latest_period, last)
        out.append((min(p.earliest_period, last), latest))
    return out


def schedule_count(windows: Sequence[tuple[int, int]]) -> int:
    # Python integers: a product of many windows must not wrap around as int64 would.
    return math.prod(hi - lo + 2 for lo, hi in windows)


def schedules(windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """Every schedule (C, P): per project never or a period of its window; never-all first."""
    options = [[NEVER, *range(lo, hi + 1)] for lo, hi in windows]
    if not options:
        return np.zeros((1, 0), dtype=np.int64)
    return np.array(list(itertools.product(*options)), dtype=np.int64)


def cvar(x: np.ndarray, alpha: float) -> float:
    """Mean of the worst `1 - alpha` share of equally likely values (lower tail of an NPV).

    Equals max over eta of `eta - E[(eta - x)+] / (1 - alpha)`: where the share is not a whole
    number of scenarios, the scenario at the cut counts with the fraction that is left.
    """
    v = np.sort(np.asarray(x, dtype=float))
    n = v.size
    if n == 0:
        return float("nan")
    k = (1.0 - alpha) * n
    whole = min(int(np.floor(k + 1e-12)), n)
    total = float(v[:whole].sum())
    if whole < n and k > whole:
        total += (k - whole) * float(v[whole])
    return total / k


def risk_objective(x: np.ndarray, weight: float, alpha: float) -> float:
    """`(1 - weight) E[x] + weight CVaR_alpha(x)`; -inf if any value is -inf (infeasible)."""
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        return float("nan")
    if np.isneginf(arr).any():
        return float("-inf")
    mean = float(arr.mean())
    return mean if weight == 0 else (1 - weight) * mean + weight * cvar(arr, alpha)


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    lower: float
    upper: float
    confidence: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "mean": self.mean,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
        }


def mean_interval(x: np.ndarray, confidence: float) -> Interval:
    """Student-t confidence interval on the mean of independent samples."""
    arr = np.asarray(x, dtype=float)
    mean = float(arr.mean()) if arr.size else float("nan")
    if arr.size < 2 or float(np.ptp(arr)) == 0.0:
        return Interval(int(arr.size), mean, mean, mean, confidence)
    ci = stats.ttest_1samp(arr, 0.0).confidence_interval(confidence)
    return Interval(int(arr.size), mean, float(ci.low), float(ci.high), confidence)


@dataclass(frozen=True)
class Figures:
    """Stochastic-programming figures, all on the job's objective (NPV units)."""

    wait_and_see: float  # WS: objective of the per-scenario optima (perfect foresight)
    recourse_value: float  # RP: objective of the chosen here-and-now schedule
    eev: float  # objective of the mean-value problem's schedule, evaluated on the scenarios

    @property
    def evpi(self) -> float:
        return self.wait_and_see - self.recourse_value

    @property
    def vss(self) -> float:
        return self.recourse_value - self.eev


def build_right_share(ws_builds: np.ndarray) -> np.ndarray:
    """Per project: the share of scenarios whose perfect-foresight optimum builds it."""
    arr = np.asarray(ws_builds)
    if arr.size == 0:
        return np.zeros(arr.shape[1] if arr.ndim == 2 else 0)
    return np.mean(arr >= 0, axis=0)
