"""Investment metrics of many scenarios at once, one row of cash flows each.

Conventions are numpy-financial's: ``cash_flows[..., t]`` is the net flow at the *start* of
period ``t`` (the first flow is at t=0 and is not discounted) and rates are per period.

Shapes: cash flows are ``(..., N)`` with periods on the last axis; usually ``(S, N)`` with one
row per scenario. Every metric returns an array of the leading shape ``(...)``, so a 1-D
input (one scenario) gives a 0-d ``float64`` array: ``float(result)`` and arithmetic work as on
a scalar, and the code path is the same as for many rows (no special scalar branch to drift).
Rate arguments are scalars or arrays broadcastable to the leading shape (one rate per row).

A row containing NaN or inf yields NaN for every metric: such rows come from failed scenarios
and must not turn into plausible-looking numbers.

The loops over rows are compiled with numba and compute each row on its own, so a row's
metrics are bit-for-bit the same whatever the other rows in the call (chunking never changes
results). The one exception to "compiled" is IRR of rows with several sign changes, which needs
the eigenvalues of a companion matrix (LAPACK through numpy, in batches).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "MAYBE_UNDEFINED",
    "METRIC_NAMES",
    "TABLE_METRICS",
    "Metric",
    "annualise",
    "discounted_payback",
    "irr",
    "metrics",
    "mirr",
    "npv",
    "payback",
    "period_rate",
    "profitability_index",
]

FloatArray = npt.NDArray[np.float64]

# Newton stops after a step that moves x by less than this relative amount: convergence is
# quadratic, so the error left after such a step is ~1e-20 relative, far below rounding.
_NEWTON_TOL = 1e-10
# After this many iterations only bisection steps are taken, which guarantees termination.
_NEWTON_ITERS = 40
_MAX_ITERS = 110
# Rows per batch of companion matrices, bounding memory to a few MB per batch.
_EIG_BATCH = 4096
# irr() row kinds
_NO_ANSWER, _ONE_CHANGE, _SEVERAL_CHANGES = 0, 1, 2
_EPS = float(np.finfo(np.float64).eps)


def _as_flows(cash_flows: npt.ArrayLike) -> tuple[FloatArray, tuple[int, ...]]:
    """Return the flows as a C-contiguous (S, N) float array and the leading shape."""
    arr = np.asarray(cash_flows, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError("cash_flows needs a last axis of at least one period")
    lead = arr.shape[:-1]
    return np.ascontiguousarray(arr.reshape(-1, arr.shape[-1])), lead


def _per_row(rate: npt.ArrayLike, lead: tuple[int, ...]) -> FloatArray:
    """Broadcast a scalar or per-row rate to one value per row, shape (S,), contiguous."""
    r = np.asarray(rate, dtype=np.float64)
    return np.ascontiguousarray(np.broadcast_to(r, lead).reshape(-1))


# --- per-row kernels ---------------------------------------------------------------------


@njit(cache=True, error_model="numpy", inline="always")
def _finite(row: FloatArray) -> bool:
    ok = True
    for x in row:
        ok = ok and np.isfinite(x)
    return ok


@njit(cache=True, error_model="numpy", inline="always")
def _discount(rate: float, previous: float, disc: FloatArray) -> float:
    """disc[t] = (1 + rate)^t, recomputed only when the rate differs from the previous row's."""
    if rate != previous:
        base = 1.0 + rate
        for t in range(disc.shape[0]):
            disc[t] = base ** float(t)
    return rate


@njit(cache=True, error_model="numpy", inline="always")
def _npv_row(row: FloatArray, disc: FloatArray, sign: int) -> float:
    """sum_t CF_t / (1 + rate)^t over all flows (sign 0), the positive (1) or negative (-1)."""
    total = 0.0
    for t in range(row.shape[0]):
        x = row[t]
        if not np.isfinite(x):
            return np.nan  # a failed scenario's flows: NaN, as every other metric
        if (sign > 0 and not x > 0) or (sign < 0 and not x < 0):
            x = 0.0
        # Divide (not multiply by 1/(1+r)^t) to round as numpy-financial does.
        total += x / disc[t]
    return total


@njit(cache=True, error_model="numpy")
def _npv_rows(rate: FloatArray, flows: FloatArray, out: FloatArray) -> None:
    disc, previous = np.empty(flows.shape[1]), np.nan
    for i in range(flows.shape[0]):
        previous = _discount(rate[i], previous, disc)
        out[i] = _npv_row(flows[i], disc, 0)


@njit(cache=True, error_model="numpy", inline="always")
def _irr_kind(row: FloatArray) -> tuple[int, int, int, float]:
    """Kind of the row for irr(), and for one sign change: first and last non-zero flow and
    the sign of the first."""
    n = row.shape[0]
    first_pos, first_neg, last_pos, last_neg = n, n, -1, -1
    for t in range(n):
        x = row[t]
        if not np.isfinite(x):
            return _NO_ANSWER, 0, 0, 0.0
        if x > 0:
            last_pos = t
            if first_pos == n:
                first_pos = t
        elif x < 0:
            last_neg = t
            if first_neg == n:
                first_neg = t
    if last_pos < 0 or last_neg < 0:
        return _NO_ANSWER, 0, 0, 0.0
    if last_neg < first_pos or last_pos < first_neg:
        sign_first = -1.0 if first_neg < first_pos else 1.0
        return _ONE_CHANGE, min(first_pos, first_neg), max(last_pos, last_neg), sign_first
    return _SEVERAL_CHANGES, 0, 0, 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _irr_single_root(row: FloatArray, first: int, last: int, sign_first: float) -> float:
    """IRR of a row with exactly one sign change: safeguarded Newton in x = 1/(1+r).

    With one sign change, f(x) = sum_t CF_t x^t has exactly one positive root (Descartes),
    f has the sign of the first non-zero flow below it and the opposite sign above it. Each
    iteration tightens the bracket [lo, hi] with the sign of f and takes the Newton step if
    it stays strictly inside the bracket, else a geometric bisection step (x may span orders
    of magnitude).
    """
    n = row.shape[0]
    biggest = 0.0
    for t in range(n):
        biggest = max(biggest, abs(row[t]))
    head, tail = abs(row[first]), abs(row[last])
    # Cauchy bounds on the moduli of the non-zero roots; they are strict, so the signs of f
    # at lo and hi are known without evaluating it there.
    hi = 1.0 + biggest / tail
    lo = head / (head + biggest)
    # Start at r = 0. A two-lump closed-form guess saves two iterations but costs as much.
    x = 1.0 if (lo < 1.0 and hi > 1.0) else np.sqrt(lo * hi)
    for it in range(_MAX_ITERS):
        p = row[n - 1]
        dp = 0.0
        for t in range(n - 2, -1, -1):
            dp = dp * x + p
            p = p * x + row[t]
        below = p * sign_first  # > 0: the root lies above x
        if below > 0:
            lo = x
        elif below < 0:
            hi = x
        step = p / dp
        x = x - step
        converged = abs(step) <= _NEWTON_TOL * x
        if not (converged or (it < _NEWTON_ITERS and lo < x < hi)):
            x = np.sqrt(lo * hi)
            converged = hi - lo <= _NEWTON_TOL * x
        if converged:
            return 1.0 / x - 1.0
    return np.nan


@njit(cache=True, error_model="numpy")
def _irr_rows(flows: FloatArray, out: FloatArray) -> npt.NDArray[np.int64]:
    """IRR of rows with at most one sign change; returns the kind of every row."""
    kinds = np.empty(flows.shape[0], dtype=np.int64)
    for i in range(flows.shape[0]):
        kind, first, last, sign_first = _irr_kind(flows[i])
        kinds[i] = kind
        out[i] = _irr_single_root(flows[i], first, last, sign_first) if kind == _ONE_CHANGE else np.nan
    return kinds


@njit(cache=True, error_model="numpy", inline="always")
def _mirr_row(row: FloatArray, fin_disc: FloatArray, rei_disc: FloatArray, rei: float) -> float:
    n = row.shape[0]
    has_pos, has_neg = False, False
    for x in row:
        has_pos = has_pos or x > 0
        has_neg = has_neg or x < 0
    if not (has_pos and has_neg and _finite(row)):
        return np.nan
    numer = abs(_npv_row(row, rei_disc, 1))
    denom = abs(_npv_row(row, fin_disc, -1))
    exponent = 1.0 / (n - 1) if n > 1 else np.nan
    return (numer / denom) ** exponent * (1.0 + rei) - 1.0


@njit(cache=True, error_model="numpy")
def _mirr_rows(flows: FloatArray, fin: FloatArray, rei: FloatArray, out: FloatArray) -> None:
    n = flows.shape[1]
    fin_disc, rei_disc, fin_prev, rei_prev = np.empty(n), np.empty(n), np.nan, np.nan
    for i in range(flows.shape[0]):
        fin_prev = _discount(fin[i], fin_prev, fin_disc)
        rei_prev = _discount(rei[i], rei_prev, rei_disc)
        out[i] = _mirr_row(flows[i], fin_disc, rei_disc, rei[i])


@njit(cache=True, error_model="numpy", inline="always")
def _pi_row(row: FloatArray, disc: FloatArray) -> float:
    outflow = -_npv_row(row, disc, -1)
    if not (outflow > 0 and _finite(row)):
        return np.nan
    return _npv_row(row, disc, 1) / outflow


@njit(cache=True, error_model="numpy")
def _pi_rows(flows: FloatArray, rate: FloatArray, out: FloatArray) -> None:
    disc, previous = np.empty(flows.shape[1]), np.nan
    for i in range(flows.shape[0]):
        previous = _discount(rate[i], previous, disc)
        out[i] = _pi_row(flows[i], disc)


@njit(cache=True, error_model="numpy", inline="always")
def _payback_row(row: FloatArray, disc: FloatArray, discounted: bool) -> float:
    """Payback of one row (of its flows divided by disc if `discounted`); see payback()."""
    n = row.shape[0]
    if not _finite(row):
        return np.nan
    cum, gross = 0.0, 0.0
    last_short = -1
    cum_at_last = 0.0
    short = False
    for t in range(n):
        x = row[t] / disc[t] if discounted else row[t]
        cum += x
        gross += abs(x)
        # A cumulative that is zero up to the rounding of its own summation counts as
        # recovered, so [-100, 30.1, 69.9] pays back at 2.0 rather than never.
        short = cum < -(n * _EPS * gross)
        if short:
            last_short = t
            cum_at_last = cum
    if short:  # still short in the last period: never recovered (also NaN cumulatives)
        return np.nan
    if last_short < 0:
        return 0.0
    x = row[last_short + 1]
    if discounted:
        x = x / disc[last_short + 1]
    # At most 1 up to rounding of the slack; the clip keeps it inside its period.
    return last_short + min(-cum_at_last / x, 1.0)


@njit(cache=True, error_model="numpy")
def _payback_rows(flows: FloatArray, rate: FloatArray, discounted: bool, out: FloatArray) -> None:
    disc, previous = np.empty(flows.shape[1]), np.nan
    for i in range(flows.shape[0]):
        previous = _discount(rate[i], previous, disc)
        out[i] = _payback_row(flows[i], disc, discounted)


@njit(cache=True, error_model="numpy")
def _metric_rows(flows: FloatArray, rate: FloatArray, out: FloatArray) -> npt.NDArray[np.int64]:
    """Columns npv, irr (per period, NaN where several sign changes), mirr, pi, payback and
    discounted payback (in periods) of every row; returns irr()'s kind of every row."""
    kinds = np.empty(flows.shape[0], dtype=np.int64)
    disc, previous = np.empty(flows.shape[1]), np.nan
    for i in range(flows.shape[0]):
        row = flows[i]
        previous = _discount(rate[i], previous, disc)
        out[0, i] = _npv_row(row, disc, 0)
        kind, first, last, sign_first = _irr_kind(row)
        kinds[i] = kind
        out[1, i] = _irr_single_root(row, first, last, sign_first) if kind == _ONE_CHANGE else np.nan
        out[2, i] = _mirr_row(row, disc, disc, rate[i])
        out[3, i] = _pi_row(row, disc)
        out[4, i] = _payback_row(row, disc, False)
        out[5, i] = _payback_row(row, disc, True)
    return kinds


# --- public functions --------------------------------------------------------------------


def npv(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Net present value, sum_t CF_t / (1 + rate)^t, as numpy_financial.npv, per row."""
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _npv_rows(_per_row(rate, lead), flows, out)
    return out.reshape(lead)


def _first_last(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index of the first and last True per row (meaningful only where the row has one)."""
    n = mask.shape[1]
    return np.argmax(mask, axis=1), n - 1 - np.argmax(mask[:, ::-1], axis=1)


def _irr_closest_root(flows: FloatArray) -> FloatArray:
    """IRR as numpy_financial.irr defines it: of the real positive roots x of
    sum_t CF_t x^t, the one whose rate 1/x - 1 is closest to zero.

    Used for rows with several sign changes, where the root is not unique. The companion
    matrices are built exactly as np.roots builds them and solved in batches, so the roots
    (and the choice among them) are the ones numpy-financial finds.
    """
    first, last = _first_last(flows != 0)
    degree = last - first
    out = np.full(flows.shape[0], np.nan)
    for d in np.unique(degree):
        group = np.flatnonzero(degree == d)
        sub = np.arange(1, d)
        for start in range(0, group.size, _EIG_BATCH):
            rows = group[start : start + _EIG_BATCH]
            # Highest power first, trailing (x = 0) roots dropped, as np.roots does.
            p = flows[rows[:, None], last[rows][:, None] - np.arange(d + 1)]
            comp = np.zeros((rows.size, d, d))
            comp[:, sub, sub - 1] = 1.0
            comp[:, 0, :] = -p[:, 1:] / p[:, :1]
            # Flows spanning ~300 orders of magnitude overflow the matrix; numpy-financial
            # raises there, and NaN is this function's "no answer".
            solvable = np.isfinite(comp[:, 0, :]).all(axis=1)
            rows, comp = rows[solvable], comp[solvable]
            roots = np.linalg.eigvals(comp)
            ok = (roots.imag == 0) & (roots.real > 0)
            rates = np.where(ok, 1.0 / roots.real - 1.0, np.inf)
            pick = np.argmin(np.abs(rates), axis=1)
            chosen = rates[np.arange(rows.size), pick]
            out[rows] = np.where(ok.any(axis=1), chosen, np.nan)
    return out


def _fill_several(flows: FloatArray, kinds: npt.NDArray[np.int64], out: FloatArray) -> None:
    several = kinds == _SEVERAL_CHANGES
    if several.any():
        # Overflow and 0/0 in rows that are hopeless anyway end as NaN; no warnings for them.
        with np.errstate(all="ignore"):
            out[several] = _irr_closest_root(flows[several])


def irr(cash_flows: npt.ArrayLike) -> FloatArray:
    """Internal rate of return per period, per row; NaN where it does not exist.

    The rate r solves sum_t CF_t / (1 + r)^t = 0 with r > -1. Rows are split by the signs
    of their flows (zeros skipped):

    * no sign change (including all-zero rows) or a non-finite flow: NaN;
    * exactly one sign change (conventional flows): the root is unique and is found by a
      compiled safeguarded Newton/bisection iteration per row;
    * several sign changes: numpy_financial.irr's rule is reproduced - among the real
      positive roots of the polynomial, the rate closest to zero, NaN if there is none - by
      solving batches of companion matrices with numpy.linalg.eigvals. This is exact but
      takes about half of numpy-financial's time per row (conventional rows: under 1%).

    Never raises for a numeric input. Float64 limits: a rate within ~1e-16 of -1 rounds to
    -1, and rows whose flows span ~300 orders of magnitude may come out NaN.
    """
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _fill_several(flows, _irr_rows(flows, out), out)
    return out.reshape(lead)


def mirr(
    cash_flows: npt.ArrayLike, finance_rate: npt.ArrayLike, reinvest_rate: npt.ArrayLike
) -> FloatArray:
    """Modified IRR per row, as numpy_financial.mirr.

    (|PV(inflows) at reinvest_rate| / |PV(outflows) at finance_rate|)^(1/(N-1))
    * (1 + reinvest_rate) - 1, with N the number of periods; NaN unless the row has both a
    positive and a negative flow.
    """
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _mirr_rows(flows, _per_row(finance_rate, lead), _per_row(reinvest_rate, lead), out)
    return out.reshape(lead)


def profitability_index(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Profitability index per row: PV(positive flows) / |PV(negative flows)|.

    Equivalently 1 + NPV / |PV(negative flows)|: the form 1 + NPV / PV(investment) of the
    Russian Methodological Recommendations, with the negative net flows of any period
    standing for the investment (net flows do not separate capex from operations). PI > 1
    exactly when NPV > 0. NaN when the row has no negative flow (nothing invested) or a
    non-finite flow.
    """
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _pi_rows(flows, _per_row(rate, lead), out)
    return out.reshape(lead)


def payback(cash_flows: npt.ArrayLike) -> FloatArray:
    """Payback period per row, in periods from t=0, fractional.

    Let C_t be the cumulative flow up to and including period t, and j the last period with
    C_j < 0. The flow of period j+1 is taken to accrue evenly over (j, j+1], so the payback
    is j + (-C_j) / CF_{j+1}: the time the cumulative crosses zero from below for the last
    time. It is 0 if the cumulative is never negative (nothing at risk, including all-zero
    rows) and NaN if it is still negative in the last period or a flow is non-finite.
    Example: [-100, 30, 40, 50] has C = [-100, -70, -30, 20], so payback = 2 + 30/50 = 2.6.
    """
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _payback_rows(flows, np.zeros(flows.shape[0]), False, out)
    return out.reshape(lead)


def discounted_payback(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Payback per row, as payback(), of the discounted flows CF_t / (1 + rate)^t."""
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    _payback_rows(flows, _per_row(rate, lead), True, out)
    return out.reshape(lead)


def period_rate(annual_rate: npt.ArrayLike, periods_per_year: npt.ArrayLike) -> FloatArray:
    """Compound-equivalent rate per period, (1 + r)^(1/m) - 1; NaN for r < -1 or NaN inputs."""
    r = np.asarray(annual_rate, dtype=np.float64)
    m = np.asarray(periods_per_year, dtype=np.float64)
    # log1p/expm1 keep small rates accurate where (1 + r) ** (1/m) - 1 would cancel.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.expm1(np.log1p(r) / m), dtype=np.float64)


def annualise(period_rate: npt.ArrayLike, periods_per_year: npt.ArrayLike) -> FloatArray:
    """Annual rate equivalent to a per-period rate, (1 + r)^m - 1; NaN for r < -1 or NaN."""
    r = np.asarray(period_rate, dtype=np.float64)
    m = np.asarray(periods_per_year, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.asarray(np.expm1(np.log1p(r) * m), dtype=np.float64)


# The metric columns of a scenario table, named once (this order is the job schema's): the
# projects' incremental metrics, which `metrics` returns in METRIC_NAMES order, and the NPV of
# the whole enterprise with the projects, which the table has last.
Metric = Literal[
    "npv", "enterprise_npv", "irr", "mirr", "pi", "payback_years", "discounted_payback_years"
]
METRIC_NAMES: tuple[Metric, ...] = tuple(m for m in get_args(Metric) if m != "enterprise_npv")
TABLE_METRICS: tuple[Metric, ...] = (*METRIC_NAMES, "enterprise_npv")
# Metrics a scenario may lack (no sign change, never paid back within the horizon): NaN then.
MAYBE_UNDEFINED: tuple[Metric, ...] = ("irr", "mirr", "payback_years", "discounted_payback_years")


def metrics(
    cash_flows: npt.ArrayLike, annual_rate: npt.ArrayLike, periods_per_year: float
) -> dict[str, FloatArray]:
    """The scenario table's metric columns for flows with periods_per_year periods a year.

    Keys, in this order, are METRIC_NAMES. The annual discount rate is converted to its
    compound-equivalent per-period rate, which is also MIRR's finance and reinvestment
    rate. Rates (irr, mirr) are annualised and paybacks converted to years; npv is in the
    flows' currency at t=0 and pi is a ratio.
    """
    flows, lead = _as_flows(cash_flows)
    rate = np.ascontiguousarray(period_rate(_per_row(annual_rate, lead), periods_per_year))
    # One pass over each row for all metrics: the row is read from memory once.
    table = np.empty((len(METRIC_NAMES), flows.shape[0]))
    _fill_several(flows, _metric_rows(flows, rate, table), table[1])
    m = periods_per_year
    out = {
        "npv": table[0],
        "irr": annualise(table[1], m),
        "mirr": annualise(table[2], m),
        "pi": table[3],
        "payback_years": table[4] / m,
        "discounted_payback_years": table[5] / m,
    }
    return {name: values.reshape(lead) for name, values in out.items()}
