"""Accounts of a physical plan: revenue, costs, tax, investment, working capital, free cash flow.

Compiled with numba and computed scenario by scenario, period by period; the conventions are in
`edt_compute.simulation` and docs/simulation.md. Every account is a row of one (A, S, T) array,
so `simulate` hands out (S, T) views without copying.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edt_compute.compiled import CompiledModel

Arr = np.ndarray

ACCOUNTS = (
    "revenue",
    "purchase_cost",
    "variable_cost",
    "fixed_cost",
    "startup_cost",
    "holding_cost",
    "shortfall_cost",
    "ebitda",
    "depreciation",
    "tax",
    "capex",
    "salvage",
    "receivables",
    "payables",
    "delta_working_capital",
    "fcf",
)
(
    REVENUE, PURCHASE, VARIABLE, FIXED, STARTUP, HOLDING, SHORTFALL, EBITDA,
    DEPRECIATION, TAX, CAPEX, SALVAGE, RECEIVABLES, PAYABLES, DELTA_WC, FCF,
) = range(len(ACCOUNTS))  # fmt: skip


def lag_coefficients(tau_days: np.ndarray, days_per_period: float) -> tuple[Arr, Arr]:
    """Per-period decay e^{-D/tau} and gain tau/D (1 - e^{-D/tau}) of a first-order lag.

    tau <= 0 means no lag: the balance is always zero.
    """
    tau = np.asarray(tau_days, dtype=float).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = np.where(tau > 0, np.exp(-days_per_period / np.where(tau > 0, tau, 1.0)), 0.0)
        gain = np.where(tau > 0, tau / days_per_period * (1.0 - decay), 0.0)
    return np.ascontiguousarray(decay), np.ascontiguousarray(gain)


@njit(cache=True, error_model="numpy")
def lag_row(flow: Arr, decay: float, gain: float, out: Arr) -> None:
    """Closing balances of a lag fed by `flow` per period: exact for piecewise-constant rates."""
    level = 0.0
    for t in range(flow.shape[0]):
        level = level * decay + flow[t] * gain
        out[t] = level


@njit(cache=True, error_model="numpy")
def lag_rows(flow: Arr, decay: Arr, gain: Arr, out: Arr) -> None:
    for s in range(flow.shape[0]):
        lag_row(flow[s], decay[s], gain[s], out[s])


def _f64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _i64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


def accounts(
    cm: CompiledModel, builds: Arr, activity: Arr, volume: Arr, stock: Arr
) -> np.ndarray:
    """All accounts as one (A, S, T) array, rows in the order of ACCOUNTS."""
    S, T = cm.S, cm.T
    P = len(cm.projects)
    out = np.empty((len(ACCOUNTS), S, T))
    # Structure shared by all scenarios: terms no scenario has are skipped.
    has_shortfall = np.any(cm.shortfall_penalty > 0, axis=0)
    has_startup = np.any(cm.startup_cost > 0, axis=0)
    has_holding = np.any(cm.holding_cost > 0, axis=0)
    expanded = np.zeros(len(cm.units), dtype=np.bool_)
    expanded[cm.project_unit] = True
    profiles = [np.asarray(p, dtype=np.float64) for p in cm.capex_profiles]
    prof_ptr = np.zeros(P + 1, dtype=np.int64)
    prof_ptr[1:] = np.cumsum([len(p) for p in profiles], dtype=np.int64)
    shares = np.concatenate([*profiles, np.zeros(0)])
    recv_decay, recv_gain = lag_coefficients(cm.receivable_days, cm.days_per_period)
    pay_decay, pay_gain = lag_coefficients(cm.payable_days, cm.days_per_period)
    _accounts(
        _f64(activity), _f64(volume), _f64(stock), _f64(cm.price),
        np.ascontiguousarray(cm.market_sells, dtype=np.bool_), has_shortfall,
        _f64(cm.min_volume), _f64(cm.shortfall_penalty),
        _f64(cm.capacity), _f64(cm.fixed_cost), _f64(cm.variable_cost), _f64(cm.startup_cost),
        has_startup, expanded, _f64(cm.holding_cost), has_holding,
        _i64(cm.project_unit), _f64(cm.project_capacity), _i64(cm.project_lead), _i64(builds),
        _f64(cm.project_fixed_cost), _f64(cm.project_capex), prof_ptr, shares,
        _i64(cm.project_life_periods), _f64(cm.project_salvage),
        _f64(cm.existing_depreciation), _f64(cm.tax_rate),
        recv_decay, recv_gain, pay_decay, pay_gain, out,
    )  # fmt: skip
    return out


@njit(cache=True, error_model="numpy")
def _accounts(
    activity: Arr, volume: Arr, stock: Arr, price: Arr,
    market_sells: Arr, has_shortfall: Arr, min_volume: Arr, penalty: Arr,
    capacity: Arr, fixed_cost: Arr, variable_cost: Arr, startup_cost: Arr,
    has_startup: Arr, expanded: Arr, holding_cost: Arr, has_holding: Arr,
    project_unit: Arr, project_capacity: Arr, project_lead: Arr, builds: Arr,
    project_fixed_cost: Arr, project_capex: Arr, prof_ptr: Arr, shares: Arr,
    life_periods: Arr, project_salvage: Arr,
    existing_depreciation: Arr, tax_rate: Arr,
    recv_decay: Arr, recv_gain: Arr, pay_decay: Arr, pay_gain: Arr, out: Arr,
) -> None:  # fmt: skip
    S, U, T = activity.shape
    M = volume.shape[1]
    R = stock.shape[1]
    P = project_unit.shape[0]
    cash_costs = np.empty(T)
    # Loops over periods are innermost: one scenario's rows are contiguous, so they vectorize.
    for s in range(S):
        for k in range(out.shape[0]):
            for t in range(T):
                out[k, s, t] = 0.0
        for m in range(M):
            row = REVENUE if market_sells[m] else PURCHASE
            for t in range(T):
                out[row, s, t] += volume[s, m, t] * price[s, m, t]
            if has_shortfall[m]:
                for t in range(T):
                    gap = _nanmax(min_volume[s, m] - volume[s, m, t], 0.0)
                    out[SHORTFALL, s, t] += gap * penalty[s, m]
        # Fixed costs of units installed from the start are constant: added once per period.
        constant = 0.0
        for u in range(U):
            if not expanded[u]:
                constant += (1.0 if capacity[s, u] > 0 else 0.0) * fixed_cost[s, u]
                continue
            for t in range(T):
                installed = capacity[s, u] > 0
                for q in range(P):
                    if project_unit[q] == u and _online(builds[s, q], project_lead[q], t):
                        installed = installed or project_capacity[s, q] > 0
                out[FIXED, s, t] += (1.0 if installed else 0.0) * fixed_cost[s, u]
        for p in range(P):
            for t in range(T):
                on = 1.0 if _online(builds[s, p], project_lead[p], t) else 0.0
                out[FIXED, s, t] += project_fixed_cost[s, p] * on
        for t in range(T):
            out[FIXED, s, t] += constant
        for u in range(U):
            for t in range(T):
                out[VARIABLE, s, t] += activity[s, u, t] * variable_cost[s, u]
            if has_startup[u]:
                peak = 1.0
                for t in range(T):
                    peak = _nanmax(peak, activity[s, u, t])
                threshold = 1e-9 * peak
                was = capacity[s, u] > 0  # existing units start the horizon on
                for t in range(T):
                    running = activity[s, u, t] > threshold
                    started = 1.0 if (running and not was) else 0.0
                    out[STARTUP, s, t] += started * startup_cost[s, u]
                    was = running
        for r in range(R):
            if has_holding[r]:
                for t in range(T):
                    out[HOLDING, s, t] += stock[s, r, t] * holding_cost[s, r]
        for t in range(T):
            ebitda = out[REVENUE, s, t] - out[PURCHASE, s, t]
            ebitda -= out[VARIABLE, s, t]
            ebitda -= out[FIXED, s, t]
            ebitda -= out[STARTUP, s, t]
            ebitda -= out[HOLDING, s, t]
            ebitda -= out[SHORTFALL, s, t]
            out[EBITDA, s, t] = ebitda
            cash_costs[t] = out[PURCHASE, s, t] + out[VARIABLE, s, t]
        _investment(s, builds, project_lead, project_capex, prof_ptr, shares, life_periods,
                    project_salvage, out)  # fmt: skip
        lag_row(out[REVENUE, s], recv_decay[s], recv_gain[s], out[RECEIVABLES, s])
        lag_row(cash_costs, pay_decay[s], pay_gain[s], out[PAYABLES, s])
        previous = 0.0
        for t in range(T):
            dep = out[DEPRECIATION, s, t] + existing_depreciation[s]
            out[DEPRECIATION, s, t] = dep
            tax = tax_rate[s] * _nanmax(out[EBITDA, s, t] - dep, 0.0)
            out[TAX, s, t] = tax
            wc = out[RECEIVABLES, s, t] - out[PAYABLES, s, t]
            delta = wc - previous
            if t == T - 1:
                delta -= wc  # working capital is released at the horizon
            previous = wc
            out[DELTA_WC, s, t] = delta
            out[FCF, s, t] = out[EBITDA, s, t] - tax - out[CAPEX, s, t] + out[SALVAGE, s, t] - delta


@njit(cache=True, error_model="numpy", inline="always")
def _nanmax(a: float, b: float) -> float:
    """np.maximum for two floats: NaN wins (a broken input must show, not vanish)."""
    return b if (b > a or b != b) else a


@njit(cache=True, error_model="numpy", inline="always")
def _online(build: int, lead: int, t: int) -> bool:
    return build >= 0 and t >= build + lead


@njit(cache=True, error_model="numpy", inline="always")
def _investment(
    s: int, builds: Arr, project_lead: Arr, project_capex: Arr, prof_ptr: Arr, shares: Arr,
    life_periods: Arr, project_salvage: Arr, out: Arr,
) -> None:  # fmt: skip
    """Capex by the project's profile (what falls after the horizon in the last period),
    straight-line depreciation from the period the capacity is available, salvage at the end.
    """
    T = out.shape[2]
    for p in range(project_lead.shape[0]):
        b = builds[s, p]
        if b < 0:
            continue
        for k in range(prof_ptr[p], prof_ptr[p + 1]):
            when = min(b + (k - prof_ptr[p]), T - 1)
            out[CAPEX, s, when] += project_capex[s, p] * shares[k]
        start = b + project_lead[p]
        life = life_periods[s, p]
        per_period = project_capex[s, p] / life
        for t in range(max(start, 0), min(start + life, T)):
            out[DEPRECIATION, s, t] += per_period
        out[SALVAGE, s, T - 1] += project_salvage[s, p]
