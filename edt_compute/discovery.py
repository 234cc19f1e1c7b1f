"""Scenario discovery: which input ranges lead to the cases of interest (e.g. NPV < 0).

PRIM, the Patient Rule Induction Method of Friedman & Fisher (1999), "Bump hunting in
high-dimensional data", Statistics and Computing 9: 123-143. Starting from the box holding
every scenario, *peeling* removes, one step at a time, the `alpha` share of the box's points
at the low or high end of one input, whichever removal leaves the highest density of cases;
it stops when the box holds fewer than `min_mass` of all points. One box of that trajectory
is chosen (the densest whose coverage is at least `min_coverage`) and *pasting* then widens
it again, one `alpha` slice at a time, while that raises the density.

Figures of a box, as in scenario discovery (Bryant & Lempert 2010):
coverage = cases in the box / all cases; density = cases in the box / points in the box;
mass = points in the box / all points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "PrimResult", "prim"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Box:
    """Per-input bounds (inclusive); -inf/+inf where an input is not restricted."""

    lower: FloatArray
    upper: FloatArray

    def contains(self, x: FloatArray) -> BoolArray:
        inside: BoolArray = np.all((x >= self.lower) & (x <= self.upper), axis=1)
        return inside


@dataclass
class PrimResult:
    names: list[str]
    box: Box
    coverage: float
    density: float
    mass: float
    cases: int  # scenarios of interest among the points
    points: int
    trajectory: list[dict[str, float]] = field(default_factory=list)

    def restricted(self) -> list[dict[str, Any]]:
        """The inputs the box restricts: name, lower and upper (None = not bounded there)."""
        out = []
        for j, name in enumerate(self.names):
            lo, hi = float(self.box.lower[j]), float(self.box.upper[j])
            if math.isfinite(lo) or math.isfinite(hi):
                out.append(
                    {
                        "input": name,
                        "lower": lo if math.isfinite(lo) else None,
                        "upper": hi if math.isfinite(hi) else None,
                    }
                )
        return out


def _figures(inside: BoolArray, y: BoolArray) -> tuple[float, float, float]:
    n_in, cases = int(inside.sum()), int(y.sum())
    hits = int((inside & y).sum())
    coverage = hits / cases if cases else 0.0
    density = hits / n_in if n_in else 0.0
    return coverage, density, n_in / len(y)


def _peel_candidates(
    x: FloatArray, inside: BoolArray, alpha: float
) -> list[tuple[int, str, float, BoolArray]]:
    """(input, side, new bound, points left) for removing ~alpha of the box at each end."""
    out = []
    n_box = int(inside.sum())
    k = max(1, math.floor(alpha * n_box))
    for j in range(x.shape[1]):
        v = np.sort(x[inside, j])
        if v[0] == v[-1]:
            continue
        # Ties: a bound between distinct values, so that a peel always removes something.
        lo = v[k] if v[k] > v[0] else v[v > v[0]][0]
        hi = v[-k - 1] if v[-k - 1] < v[-1] else v[v < v[-1]][-1]
        out.append((j, "lower", float(lo), inside & (x[:, j] >= lo)))
        out.append((j, "upper", float(hi), inside & (x[:, j] <= hi)))
    return out


def _paste(x: FloatArray, y: BoolArray, box: Box, alpha: float) -> Box:
    """Widen `box` one slice at a time while that raises its density."""
    lower, upper = box.lower.copy(), box.upper.copy()
    while True:
        inside = Box(lower, upper).contains(x)
        density = _figures(inside, y)[1]
        k = max(1, math.floor(alpha * int(inside.sum())))
        best: tuple[float, int, str, float] | None = None
        for j in range(x.shape[1]):
            others = Box(np.delete(lower, j), np.delete(upper, j)).contains(np.delete(x, j, axis=1))
            below = np.sort(x[others & (x[:, j] < lower[j]), j])
            above = np.sort(x[others & (x[:, j] > upper[j]), j])
            for side, values in (("lower", below[::-1]), ("upper", above)):
                if not len(values):
                    continue
                bound = float(values[min(k, len(values)) - 1])
                lo = bound if side == "lower" else lower[j]
                hi = bound if side == "upper" else upper[j]
                trial = others & (x[:, j] >= lo) & (x[:, j] <= hi)
                d = _figures(trial, y)[1]
                if d > density and (best is None or d > best[0]):
                    best = (d, j, side, bound)
        if best is None:
            return Box(lower, upper)
        _, j, side, bound = best
        if side == "lower":
            lower[j] = bound
        else:
            upper[j] = bound


def _loosen(x: FloatArray, box: Box) -> Box:
    """A bound at or beyond the data's extreme restricts nothing: written as -inf/+inf."""
    lower = np.where(box.lower <= x.min(axis=0), -np.inf, box.lower)
    upper = np.where(box.upper >= x.max(axis=0), np.inf, box.upper)
    return Box(lower, upper)


def prim(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    names: list[str],
    *,
    alpha: float = 0.05,
    min_mass: float = 0.05,
    min_coverage: float = 0.5,
) -> PrimResult:
    """The PRIM box of the cases `y` (bool, one per row of `x`) over the inputs `x` (rows x
    inputs, finite). Unrestricted sides of the box are -inf/+inf."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=bool)
    if xs.ndim != 2 or xs.shape[1] != len(names):
        raise ValueError(f"x must be rows x {len(names)} inputs, got shape {xs.shape}")
    if ys.shape != (xs.shape[0],):
        raise ValueError(f"y must have one value per row ({xs.shape[0]}), got shape {ys.shape}")
    if not xs.shape[0]:
        raise ValueError("no scenarios to search")
    if not np.isfinite(xs).all():
        raise ValueError("x has NaN or infinite values: drop those rows first")
    for label, value, top in (("alpha", alpha, 0.5), ("min_mass", min_mass, 1.0)):
        if not 0.0 < value < top:
            raise ValueError(f"{label} must be in (0, {top}), got {value}")
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage}")

    d = xs.shape[1]
    box = Box(np.full(d, -np.inf), np.full(d, np.inf))
    inside = np.ones(len(ys), dtype=bool)
    boxes = [box]
    trajectory = [dict(zip(("coverage", "density", "mass"), _figures(inside, ys), strict=True))]
    while ys.any():
        candidates = _peel_candidates(xs, inside, alpha)
        candidates = [c for c in candidates if c[3].sum() / len(ys) >= min_mass]
        if not candidates:
            break
        j, side, bound, left = max(candidates, key=lambda c: _figures(c[3], ys)[1])
        lower, upper = box.lower.copy(), box.upper.copy()
        (lower if side == "lower" else upper)[j] = bound
        box, inside = Box(lower, upper), left
        boxes.append(box)
        trajectory.append(
            dict(zip(("coverage", "density", "mass"), _figures(inside, ys), strict=True))
        )

    eligible = [i for i, t in enumerate(trajectory) if t["coverage"] >= min_coverage] or [0]
    # Densest first; among equally dense boxes the one found first covers the most.
    chosen = max(eligible, key=lambda i: (trajectory[i]["density"], -i))
    final = _loosen(xs, _paste(xs, ys, boxes[chosen], alpha))
    coverage, density, mass = _figures(final.contains(xs), ys)
    return PrimResult(
        names=list(names),
        box=final,
        coverage=coverage,
        density=density,
        mass=mass,
        cases=int(ys.sum()),
        points=len(ys),
        trajectory=trajectory,
    )
