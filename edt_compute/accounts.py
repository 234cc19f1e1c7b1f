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
    # One scenario's accounts are accumulated in a small buffer that stays in L1 cache and
    # copied out once; loops over periods are innermost, so they vectorize.
    acc = np.empty((out.shape[0], T))
    for s in range(S):
        for k in range(acc.shape[0]):
            for t in range(T):
                acc[k, t] = 0.0
        for m in range(M):
            row = REVENUE if market_sells[m] else PURCHASE
            for t in range(T):
                acc[row, t] += volume[s, m, t] * price[s, m, t]
            if has_shortfall[m]:
                for t in range(T):
                    gap = _nanmax(min_volume[s, m] - volume[s, m, t], 0.0)
                    acc[SHORTFALL, t] += gap * penalty[s, m]
        # Fixed costs of units installed from the start are constant: added once per period.
        constant = 0.0
        for u in range(U):
            if not expanded[u]:
                constant += (1.0 if capacity[s, u] > 0 else 0.0) * fixed_cost[s, u]
                continue
            for t in range(T):
                installed = capacity[s, u] > 0
                for q in range(P):
                    if project_unit[q] == u and project_online(builds[s, q], project_lead[q], t):
                        installed = installed or project_capacity[s, q] > 0
                acc[FIXED, t] += (1.0 if installed else 0.0) * fixed_cost[s, u]
        for p in range(P):
            for t in range(T):
                on = 1.0 if project_online(builds[s, p], project_lead[p], t) else 0.0
                acc[FIXED, t] += project_fixed_cost[s, p] * on
        for t in range(T):
            acc[FIXED, t] += constant
        for u in range(U):
            for t in range(T):
                acc[VARIABLE, t] += activity[s, u, t] * variable_cost[s, u]
            if has_startup[u]:
                peak = 1.0
                for t in range(T):
                    peak = _nanmax(peak, activity[s, u, t])
                threshold = 1e-9 * peak
                was = capacity[s, u] > 0  # existing units start the horizon on
                for t in range(T):
                    running = activity[s, u, t] > threshold
                    started = 1.0 if (running and not was) else 0.0
                    acc[STARTUP, t] += started * startup_cost[s, u]
                    was = running
        for r in range(R):
            if has_holding[r]:
                for t in range(T):
                    acc[HOLDING, t] += stock[s, r, t] * holding_cost[s, r]
        for t in range(T):
            ebitda = acc[REVENUE, t] - acc[PURCHASE, t]
            ebitda -= acc[VARIABLE, t]
            ebitda -= acc[FIXED, t]
            ebitda -= acc[STARTUP, t]
            ebitda -= acc[HOLDING, t]
            ebitda -= acc[SHORTFALL, t]
            acc[EBITDA, t] = ebitda
            cash_costs[t] = acc[PURCHASE, t] + acc[VARIABLE, t]
        _investment(s, builds, project_lead, project_capex, prof_ptr, shares, life_periods,
                    project_salvage, acc)  # fmt: skip
        lag_row(acc[REVENUE], recv_decay[s], recv_gain[s], acc[RECEIVABLES])
        lag_row(cash_costs, pay_decay[s], pay_gain[s], acc[PAYABLES])
        previous = 0.0
        for t in range(T):
            dep = acc[DEPRECIATION, t] + existing_depreciation[s]
            acc[DEPRECIATION, t] = dep
            tax = tax_rate[s] * _nanmax(acc[EBITDA, t] - dep, 0.0)
            acc[TAX, t] = tax
            wc = acc[RECEIVABLES, t] - acc[PAYABLES, t]
            delta = wc - previous
            if t == T - 1:
                delta -= wc  # working capital is released at the horizon
            previous = wc
            acc[DELTA_WC, t] = delta
            acc[FCF, t] = acc[EBITDA, t] - tax - acc[CAPEX, t] + acc[SALVAGE, t] - delta
        for k in range(acc.shape[0]):
            for t in range(T):
                out[k, s, t] = acc[k, t]


@njit(cache=True, error_model="numpy", inline="always")
def _nanmax(a: float, b: float) -> float:
    """np.maximum for two floats: NaN wins (a broken input must show, not vanish)."""
    return b if (b > a or b != b) else a


@njit(cache=True, error_model="numpy", inline="always")
def project_online(build: int, lead: int, t: int) -> bool:
    """Whether a project built in period `build` (-1: never) adds its capacity in period t."""
    return build >= 0 and t >= build + lead


@njit(cache=True, error_model="numpy", inline="always")
def _investment(
    s: int, builds: Arr, project_lead: Arr, project_capex: Arr, prof_ptr: Arr, shares: Arr,
    life_periods: Arr, project_salvage: Arr, acc: Arr,
) -> None:  # fmt: skip
    """Into scenario s's accounts `acc` (A, T): capex by the project's profile (what falls after
    the horizon in the last period), straight-line depreciation from the period the capacity is
    available, salvage at the end.
    """
    T = acc.shape[1]
    for p in range(project_lead.shape[0]):
        b = builds[s, p]
        if b < 0:
            continue
        for k in range(prof_ptr[p], prof_ptr[p + 1]):
            when = min(b + (k - prof_ptr[p]), T - 1)
            acc[CAPEX, when] += project_capex[s, p] * shares[k]
        start = b + project_lead[p]
        life = life_periods[s, p]
        per_period = project_capex[s, p] / life
        for t in range(max(start, 0), min(start + life, T)):
            acc[DEPRECIATION, t] += per_period
        acc[SALVAGE, T - 1] += project_salvage[s, p]
