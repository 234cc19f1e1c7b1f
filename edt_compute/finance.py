"""Investment metrics vectorized over scenarios.

Conventions are numpy-financial's: ``cash_flows[..., t]`` is the net flow at the *start* of
period ``t`` (the first flow is at t=0 and is not discounted) and rates are per period.

Shapes: cash flows are ``(..., N)`` with periods on the last axis; usually ``(S, N)`` with one
row per scenario. Every metric returns an array of the leading shape ``(...)``, so a 1-D
input (one scenario) gives a 0-d ``float64`` array: ``float(result)`` and arithmetic work as on
a scalar, and the code path is the same as for many rows (no special scalar branch to drift).
Rate arguments are scalars or arrays broadcastable to the leading shape (one rate per row).

A row containing NaN or inf yields NaN for every metric: such rows come from failed scenarios
and must not turn into plausible-looking numbers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "METRIC_NAMES",
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
# Rows per block in irr(): small enough for the working vectors to stay in L2 cache.
_BLOCK_ROWS = 16384
# Rows per batch of companion matrices, bounding memory to a few MB per batch.
_EIG_BATCH = 4096


def _as_flows(cash_flows: npt.ArrayLike) -> tuple[FloatArray, tuple[int, ...]]:
    """Return the flows as a C-contiguous (S, N) float array and the leading shape."""
    arr = np.asarray(cash_flows, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError("cash_flows needs a last axis of at least one period")
    lead = arr.shape[:-1]
    return np.ascontiguousarray(arr.reshape(-1, arr.shape[-1])), lead


def _per_row(rate: npt.ArrayLike, lead: tuple[int, ...]) -> FloatArray:
    """Broadcast a scalar or per-row rate to one value per row, shape (S,)."""
    r = np.asarray(rate, dtype=np.float64)
    return np.broadcast_to(r, lead).reshape(-1)


def _discount_factors(rate: FloatArray, n_periods: int) -> FloatArray:
    """(1 + r)^t as (S, N), or (1, N) when all rows share a rate (saves an (S, N) array)."""
    t = np.arange(n_periods)
    if rate.size > 0 and np.all(rate == rate[0]):
        return ((1.0 + rate[0]) ** t)[None, :]
    return (1.0 + rate)[:, None] ** t


def _finite_rows(flows: FloatArray) -> npt.NDArray[np.bool_]:
    return np.asarray(np.isfinite(flows).all(axis=1))


def npv(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Net present value, sum_t CF_t / (1 + rate)^t, as numpy_financial.npv, per row."""
    flows, lead = _as_flows(cash_flows)
    r = _per_row(rate, lead)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Divide (not multiply by 1/(1+r)^t) to round exactly as numpy-financial does.
        out = (flows / _discount_factors(r, flows.shape[1])).sum(axis=1)
    return np.asarray(out, dtype=np.float64).reshape(lead)


def _first_last(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index of the first and last True per row (meaningful only where the row has one)."""
    n = mask.shape[1]
    return np.argmax(mask, axis=1), n - 1 - np.argmax(mask[:, ::-1], axis=1)


def _horner(coef_t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Value and derivative of sum_t coef_t[t] * x^t; coef_t is (N, M) so rows are contiguous."""
    p = coef_t[-1].copy()
    dp = np.zeros_like(x)
    for c in coef_t[-2::-1]:
        dp *= x
        dp += p
        p *= x
        p += c
    return p, dp


def _irr_single_root(
    flows: FloatArray,
    first: npt.NDArray[np.intp],
    last: npt.NDArray[np.intp],
    sign_first: FloatArray,
) -> FloatArray:
    """IRR of rows with exactly one sign change: safeguarded Newton in x = 1/(1+r).

    With one sign change, f(x) = sum_t CF_t x^t has exactly one positive root (Descartes),
    f has the sign of the first non-zero flow below it and the opposite sign above it. Each
    iteration tightens the bracket [lo, hi] with the sign of f and takes the Newton step if
    it stays strictly inside the bracket, else a geometric bisection step (x may span orders
    of magnitude). Rows leave the working set once converged.
    """
    m = flows.shape[0]
    rows = np.arange(m)
    coef_t = np.ascontiguousarray(flows.T)
    biggest = np.maximum(coef_t.max(axis=0), -coef_t.min(axis=0))
    head, tail = np.abs(flows[rows, first]), np.abs(flows[rows, last])
    # Cauchy bounds on the moduli of the non-zero roots; they are strict, so the signs of f
    # at lo and hi are known without evaluating it there.
    hi = 1.0 + biggest / tail
    lo = head / (head + biggest)
    # Start at r = 0. A two-lump closed-form guess saves two iterations but costs as much.
    x = np.where((lo < 1.0) & (hi > 1.0), 1.0, np.sqrt(lo * hi))

    ids = rows
    live = np.ones(m, dtype=bool)
    out = np.full(m, np.nan)
    for it in range(_MAX_ITERS):
        f, df = _horner(coef_t, x)
        below = f * sign_first  # > 0: the root lies above x
        np.copyto(lo, x, where=below > 0)
        np.copyto(hi, x, where=below < 0)
        step = f / df
        x = x - step
        converged = np.abs(step) <= _NEWTON_TOL * x
        ok = converged
        if it < _NEWTON_ITERS:
            ok = ok | ((x > lo) & (x < hi))
        bad = ~ok
        if bad.any():
            # Bisection is rare, so it is done on the few rows that need it only.
            mid = np.sqrt(lo[bad] * hi[bad])
            x[bad] = mid
            converged[bad] = hi[bad] - lo[bad] <= _NEWTON_TOL * mid
        done = live & converged
        out[ids[done]] = x[done]
        live &= ~done
        n_live = int(live.sum())
        if n_live == 0:
            break
        # Compaction copies the coefficients, so only pay for it once it saves work.
        if n_live < 0.8 * live.size:
            coef_t, x, lo, hi = coef_t[:, live], x[live], lo[live], hi[live]
            ids, sign_first = ids[live], sign_first[live]
            live = np.ones(n_live, dtype=bool)
    return 1.0 / out - 1.0


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


def _irr_rows(flows: FloatArray) -> FloatArray:
    """irr() of an (S, N) block of rows."""
    pos, neg = flows > 0, flows < 0
    first_pos, last_pos = _first_last(pos)
    first_neg, last_neg = _first_last(neg)
    mixed = pos.any(axis=1) & neg.any(axis=1) & _finite_rows(flows)
    single = mixed & ((last_neg < first_pos) | (last_pos < first_neg))
    several = mixed & ~single

    out = np.full(flows.shape[0], np.nan)
    if single.all():
        sel: slice | npt.NDArray[np.bool_] = slice(None)  # spare the copy in the common case
    else:
        sel = single
    if single.any():
        first = np.minimum(first_pos, first_neg)[sel]
        last = np.maximum(last_pos, last_neg)[sel]
        sign_first = np.where(first_neg < first_pos, -1.0, 1.0)[sel]
        out[sel] = _irr_single_root(flows[sel], first, last, sign_first)
    if several.any():
        out[several] = _irr_closest_root(flows[several])
    return out


def irr(cash_flows: npt.ArrayLike) -> FloatArray:
    """Internal rate of return per period, per row; NaN where it does not exist.

    The rate r solves sum_t CF_t / (1 + r)^t = 0 with r > -1. Rows are split by the signs
    of their flows (zeros skipped):

    * no sign change (including all-zero rows) or a non-finite flow: NaN;
    * exactly one sign change (conventional flows): the root is unique and is found by a
      vectorized safeguarded Newton/bisection iteration on all such rows at once;
    * several sign changes: numpy_financial.irr's rule is reproduced - among the real
      positive roots of the polynomial, the rate closest to zero, NaN if there is none - by
      solving batches of companion matrices with numpy.linalg.eigvals. This is exact but
      takes about half of numpy-financial's time per row (conventional rows: under 1%).

    Every row is computed by elementwise operations only, so its IRR is bit-for-bit the same
    whatever the other rows in the call (chunking never changes results). Never raises for a
    numeric input. Float64 limits: a rate within ~1e-16 of -1 rounds to -1, and rows whose
    flows span ~300 orders of magnitude may come out NaN.
    """
    flows, lead = _as_flows(cash_flows)
    out = np.empty(flows.shape[0])
    # Overflow and 0/0 in rows that are hopeless anyway end as NaN; no warnings for them.
    with np.errstate(all="ignore"):
        # Blocks keep the per-row working vectors in cache: worth ~1/3 of the time.
        for start in range(0, flows.shape[0], _BLOCK_ROWS):
            out[start : start + _BLOCK_ROWS] = _irr_rows(flows[start : start + _BLOCK_ROWS])
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
    n = flows.shape[1]
    fin, rei = _per_row(finance_rate, lead), _per_row(reinvest_rate, lead)
    pos, neg = flows > 0, flows < 0
    with np.errstate(all="ignore"):
        numer = np.abs(npv(rei, np.where(pos, flows, 0.0)))
        denom = np.abs(npv(fin, np.where(neg, flows, 0.0)))
        exponent = 1.0 / (n - 1) if n > 1 else np.nan
        out = (numer / denom) ** exponent * (1.0 + rei) - 1.0
    valid = pos.any(axis=1) & neg.any(axis=1) & _finite_rows(flows)
    return np.where(valid, out, np.nan).reshape(lead)


def profitability_index(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Profitability index per row: PV(positive flows) / |PV(negative flows)|.

    Equivalently 1 + NPV / |PV(negative flows)|: the form 1 + NPV / PV(investment) of the
    Russian Methodological Recommendations, with the negative net flows of any period
    standing for the investment (net flows do not separate capex from operations). PI > 1
    exactly when NPV > 0. NaN when the row has no negative flow (nothing invested) or a
    non-finite flow.
    """
    flows, lead = _as_flows(cash_flows)
    r = _per_row(rate, lead)
    inflow = npv(r, np.where(flows > 0, flows, 0.0))
    outflow = -npv(r, np.where(flows < 0, flows, 0.0))
    valid = (outflow > 0) & _finite_rows(flows)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, inflow / np.where(valid, outflow, 1.0), np.nan).reshape(lead)


def _payback_periods(flows: FloatArray) -> FloatArray:
    """Payback of (S, N) flows; see payback() for the definition."""
    m, n = flows.shape
    cum = np.cumsum(flows, axis=1)
    # A cumulative that is zero up to the rounding of its own summation counts as recovered,
    # so [-100, 30.1, 69.9] pays back at 2.0 rather than never.
    slack = n * np.finfo(np.float64).eps * np.cumsum(np.abs(flows), axis=1)
    short = cum < -slack
    any_short = short.any(axis=1)
    last_short = n - 1 - np.argmax(short[:, ::-1], axis=1)
    never = short[:, -1]
    j = np.where(any_short & ~never, last_short, 0)
    rows = np.arange(m)
    nxt = np.minimum(j + 1, n - 1)
    with np.errstate(all="ignore"):  # rows without a crossing divide by anything
        # At most 1 up to rounding of the slack; the clip keeps it inside its period.
        frac = np.minimum(-cum[rows, j] / flows[rows, nxt], 1.0)
    out = np.where(any_short, j + frac, 0.0)
    return np.where(never | ~_finite_rows(flows), np.nan, out)


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
    return _payback_periods(flows).reshape(lead)


def discounted_payback(rate: npt.ArrayLike, cash_flows: npt.ArrayLike) -> FloatArray:
    """Payback per row, as payback(), of the discounted flows CF_t / (1 + rate)^t."""
    flows, lead = _as_flows(cash_flows)
    r = _per_row(rate, lead)
    with np.errstate(all="ignore"):
        discounted = flows / _discount_factors(r, flows.shape[1])
    return _payback_periods(discounted).reshape(lead)


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


METRIC_NAMES = ("npv", "irr", "mirr", "pi", "payback_years", "discounted_payback_years")


def _metrics_block(flows: FloatArray, rate: FloatArray, m: float) -> dict[str, FloatArray]:
    return {
        "npv": npv(rate, flows),
        "irr": annualise(irr(flows), m),
        "mirr": annualise(mirr(flows, rate, rate), m),
        "pi": profitability_index(rate, flows),
        "payback_years": payback(flows) / m,
        "discounted_payback_years": discounted_payback(rate, flows) / m,
    }


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
    rate = period_rate(_per_row(annual_rate, lead), periods_per_year)
    out = {name: np.empty(flows.shape[0]) for name in METRIC_NAMES}
    # Row blocks keep the temporaries in cache, about twice as fast on a million rows; rows
    # are independent, so the results are the same.
    for start in range(0, flows.shape[0], _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        for name, values in _metrics_block(flows[rows], rate[rows], periods_per_year).items():
            out[name][rows] = values
    return {name: values.reshape(lead) for name, values in out.items()}
