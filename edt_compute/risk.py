"""Risk figures over a result set: one value per scenario (usually NPV), summarised.

Everything returned is JSON-ready (summary.json): plain ints and floats, NaN and inf as None.
Non-finite values are scenarios without a result (failed, or a metric that does not exist
such as the IRR of flows without a sign change); they are counted as ``missing`` and left out
of every statistic, so the statistics describe the scenarios that have a value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from edt_compute.finance import MAYBE_UNDEFINED, METRIC_NAMES

__all__ = ["json_float", "json_ready", "summarize", "summarize_metrics", "tornado"]

_QUANTILES = {"p5": 0.05, "p10": 0.10, "p50": 0.50, "p90": 0.90, "p95": 0.95}


def json_float(value: float | np.floating[Any]) -> float | None:
    """A float for JSON, which has no NaN or infinity: a missing figure is None (null)."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_ready(obj: Any) -> Any:
    """`obj` with every float through `json_float` and numpy scalars as plain numbers."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return json_float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _spearman(
    column: npt.ArrayLike,
    values: npt.NDArray[np.float64],
    ranked: tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]] | None = None,
) -> float | None:
    """Spearman's rho over the scenarios where both are finite; None when undefined
    (fewer than 3 pairs, or either side constant). `ranked` = (finite mask, ranks of the
    finite values) lets several inputs share one ranking of the values (1e6 rows: seconds)."""
    x = np.asarray(column, dtype=np.float64)
    if x.shape != values.shape:
        raise ValueError(f"an input column has shape {x.shape}, the values {values.shape}")
    both = np.isfinite(x) & np.isfinite(values)
    xs, y = x[both], values[both]
    # Checked here rather than left to scipy, which warns and returns NaN for these.
    if xs.size < 3 or np.ptp(xs) == 0 or np.ptp(y) == 0:
        return None
    if ranked is not None and np.array_equal(both, ranked[0]):
        # Spearman's rho is Pearson's r of the (average) ranks, as scipy computes it.
        return json_float(np.corrcoef(stats.rankdata(xs), ranked[1])[0, 1])
    return json_float(stats.spearmanr(xs, y).statistic)


def _risk_key(prefix: str, confidence: float) -> str:
    # 0.95 -> "var95", 0.975 -> "var97.5": the key says which level it was computed at.
    return f"{prefix}{confidence * 100:g}"


def summarize(
    values: np.ndarray,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    lam: float = 0.3,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Summary statistics of one value per scenario.

    Keys:

    * ``count``: scenarios with a finite value; ``missing``: the others (NaN/inf).
    * ``mean``, ``std`` (sample, ddof=1), ``stderr`` (std / sqrt(count), of the mean).
    * ``p5``, ``p10``, ``p50``, ``p90``, ``p95``: quantiles, numpy's default (linear) method.
    * ``prob_negative``: share of the counted scenarios with a value < 0.
    * ``var95`` and ``cvar95`` (the suffix follows ``confidence``: 0.99 gives ``var99``):
      in value units, not as a loss. ``var95`` is the (1 - confidence) quantile of the
      values, i.e. the NPV that is undershot with 5% probability (equal to ``p5`` at the
      default level); ``cvar95`` is the mean of the values at or below it, the expected NPV
      in the worst 5% of scenarios. Both are negative when that tail loses money.
    * ``expected_integral_effect``: lam * max + (1 - lam) * min of the values.
    * ``spearman``: for each input column, Spearman's rank correlation with the values
      (over scenarios where both are finite), or None if undefined; ``{}`` without inputs.

    Statistics that need more scenarios than there are (e.g. std with one) are None.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    x = v[np.isfinite(v)]
    n = int(x.size)
    var_key, cvar_key = _risk_key("var", confidence), _risk_key("cvar", confidence)
    out: dict[str, Any] = {"count": n, "missing": int(v.size - n)}

    if n == 0:
        keys = ["mean", "std", "stderr", *_QUANTILES, "prob_negative", var_key, cvar_key]
        out |= dict.fromkeys([*keys, "expected_integral_effect"])
    else:
        std = float(np.std(x, ddof=1)) if n > 1 else math.nan
        levels = [*_QUANTILES.values(), 1.0 - confidence]
        *quantiles, var = np.quantile(x, levels)
        out["mean"] = json_float(np.mean(x))
        out["std"] = json_float(std)
        out["stderr"] = json_float(std / math.sqrt(n))
        out |= {k: json_float(q) for k, q in zip(_QUANTILES, quantiles, strict=True)}
        out["prob_negative"] = float(np.mean(x < 0))
        out[var_key] = json_float(var)
        # The quantile is interpolated, but min(x) <= it, so the tail is never empty.
        out[cvar_key] = json_float(np.mean(x[x <= var]))
        # Expected integral effect under interval uncertainty, E = lam*E_max + (1-lam)*E_min
        # (Arrow-Hurwicz form), with lam = 0.3 as the recommended norm: "Metodicheskie
        # rekomendatsii po otsenke effektivnosti investitsionnykh proektov" (Methodological
        # Recommendations on evaluating the efficiency of investment projects), 2nd ed.,
        # Moscow: Ekonomika, 2000; approved by the Ministry of Economy, Ministry of Finance
        # and Gosstroy of Russia, 21.06.1999 No. VK 477.
        out["expected_integral_effect"] = json_float(lam * x.max() + (1.0 - lam) * x.min())

    finite = np.isfinite(v)
    ranked = (finite, stats.rankdata(v[finite])) if inputs else None
    out["spearman"] = {name: _spearman(col, v, ranked) for name, col in (inputs or {}).items()}
    return out


def summarize_metrics(
    table: Mapping[str, np.ndarray],
    metric_names: Iterable[str] = METRIC_NAMES,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    sensitivity_of: Iterable[str] | None = None,
    lam: float = 0.3,
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """summarize() of each named metric column of a scenario table, keyed by metric.

    Metrics absent from the table are left out (e.g. a job that computes no MIRR), so the
    result lists exactly the metrics that were summarised. `inputs` are ranked against the
    metrics named in `sensitivity_of` (default: every metric). A metric a scenario may lack
    (`finance.MAYBE_UNDEFINED`: IRR without a sign change, a payback never reached) also gets
    ``share_undefined``: the share of the scenarios without one (None without scenarios),
    since its statistics describe only the scenarios that have one.
    """
    ranked = set(metric_names if sensitivity_of is None else sensitivity_of)
    out: dict[str, dict[str, Any]] = {}
    for name in metric_names:
        if name not in table:
            continue
        values = np.asarray(table[name], dtype=np.float64)
        with_inputs = inputs if name in ranked else None
        out[name] = summarize(values, inputs=with_inputs, lam=lam, confidence=confidence)
        if name in MAYBE_UNDEFINED:
            share = float(np.mean(~np.isfinite(values))) if values.size else None
            out[name]["share_undefined"] = share
    return out


def tornado(
    base: float, low: Mapping[str, float], high: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One bar per parameter of a one-at-a-time sensitivity, widest first.

    ``low[p]`` and ``high[p]`` are the output with parameter p at its low and high setting
    and every other parameter at base. Each bar is ``{parameter, low, high, swing}`` with
    swing = |high - low|, plus ``low_delta`` and ``high_delta`` = low/high - base, the bar's
    extent on a chart centred at base. Bars whose swing is undefined (NaN) come last.
    """
    if set(low) != set(high):
        raise ValueError(f"low and high name different parameters: {set(low) ^ set(high)}")
    bars = [
        {
            "parameter": name,
            "low": json_float(low[name]),
            "high": json_float(high[name]),
            "swing": json_float(abs(high[name] - low[name])),
            "low_delta": json_float(low[name] - base),
            "high_delta": json_float(high[name] - base),
        }
        for name in low
    ]
    # Stable sort: equal swings keep the caller's order.
    return sorted(bars, key=lambda bar: -bar["swing"] if bar["swing"] is not None else math.inf)
