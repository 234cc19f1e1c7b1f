"""Scenario numbers in the form the MILP formulation reads them.

`scenario_params` turns one scenario of a CompiledModel into named arrays; they become the
mutable Params of the Pyomo formulation, and at re-solve time the same arrays are evaluated
straight into HiGHS. Derived quantities (discount factors, working-capital weights, the NPV of
a project's capex and salvage per build period, depreciation schedules) are computed here,
vectorized, so that every coefficient of the formulation is a low-degree product of these.
"""

from __future__ import annotations

import numpy as np

from edt_compute.accounts import lag_coefficients
from edt_compute.compiled import CompiledModel
from edt_compute.finance import period_rate
from solvers.structure import MilpStructure

# A unit with a start-up cost must produce something while "on": otherwise the MILP could
# idle at zero activity to avoid a restart that the kernel (which calls a unit running when its
# activity is positive) would charge. The share is small enough not to matter economically.
MIN_RUNNING_SHARE = 1e-6

Params = dict[str, np.ndarray]


def discount_factors(cm: CompiledModel, s: int) -> np.ndarray:
    """1 / (1 + r)^t per period, r the compound-equivalent period rate; t=0 undiscounted."""
    rate = float(period_rate(cm.discount_rate[s], cm.periods_per_year))
    return 1.0 / (1.0 + rate) ** np.arange(cm.T)


def lag_npv_weights(disc: np.ndarray, tau_days: float, days_per_period: float) -> np.ndarray:
    """NPV of the working-capital cash of a unit flow in period k held in a first-order lag.

    The kernel's balance is W_t = sum_{k<=t} gain * decay^(t-k) * flow_k; the cash flow is
    -(W_t - W_{t-1}) with W released in the last period, whose NPV telescopes to
    -sum_{t<T-1} W_t (d_t - d_{t+1}). Returned: d NPV / d flow_k (<= 0 for positive d_t steps).
    """
    T = disc.size
    decays, gains = lag_coefficients(np.array([tau_days]), days_per_period)
    decay, gain = float(decays[0]), float(gains[0])
    if gain == 0.0 or T < 2:  # no lag (tau <= 0): no working capital
        return np.zeros(T)
    g = np.zeros(T)
    g[:-1] = disc[:-1] - disc[1:]
    t = np.arange(T)
    lags = t[:, None] - t[None, :]  # [t, k]
    kernel = np.where(lags >= 0, decay ** np.maximum(lags, 0), 0.0)
    return -gain * (kernel.T @ g)


def scenario_params(st: MilpStructure, cm: CompiledModel, s: int) -> Params:
    """All numbers of scenario `s` the formulation uses, keyed by Param name."""
    T = st.T
    t = np.arange(T)
    proj_unit = np.asarray(st.project_unit, dtype=np.int64)
    has_project = np.zeros(len(st.units), dtype=bool)
    has_project[proj_unit] = True

    disc = discount_factors(cm, s)
    dpp = cm.days_per_period
    avail = cm.availability[s]
    cap0 = cm.capacity[s]
    cap = cap0 * avail
    pcap = cm.project_capacity[s] * avail[proj_unit]
    bigm = cap.copy()
    np.add.at(bigm, proj_unit, pcap)
    startup = cm.startup_cost[s]
    floor = np.where(startup > 0, np.maximum(cm.min_load[s], MIN_RUNNING_SHARE), cm.min_load[s])
    fixed = cm.fixed_cost[s]
    pu = list(st.project_units)

    price = cm.price[s]
    vmin = cm.min_volume[s]
    pen = cm.shortfall_penalty[s]
    stored = list(st.stored)

    capex = cm.project_capex[s]
    life = cm.project_life_periods[s].astype(float)
    lead = np.asarray(st.project_lead, dtype=np.int64)
    P = len(st.projects)
    allowed = np.zeros((P, T))
    bval = np.zeros((P, T))
    depwin = np.zeros((P, T, T))  # [project, build period, period]: 1 while depreciating
    for p in range(P):
        lo, hi = st.project_window[p]
        allowed[p, lo : hi + 1] = 1.0
        paid = sum(
            share * disc[np.minimum(t + k, T - 1)] for k, share in enumerate(cm.capex_profiles[p])
        )
        bval[p] = -capex[p] * paid + cm.project_salvage[s, p] * disc[-1]
        start = t[:, None] + lead[p]
        depwin[p] = (t[None, :] >= start) & (t[None, :] < start + life[p])

    def pick(arr: np.ndarray, entries: tuple[tuple[int, int], ...]) -> np.ndarray:
        return np.array([arr[u, r] for u, r in entries], dtype=float)

    return {
        "disc": disc,
        "w_rev": lag_npv_weights(disc, float(cm.receivable_days[s]), dpp),
        "w_pay": -lag_npv_weights(disc, float(cm.payable_days[s]), dpp),
        "cap": cap,
        "pcap": pcap,
        "bigm": bigm,
        "floor": floor,
        # Units no project expands may only run where they have capacity; the others get a row.
        "onmax": np.where(has_project, 1.0, (cap > 0).astype(float)),
        "has_cap": (cap > 0).astype(float),
        "p_on": (pcap > 0).astype(float),
        "init_on": (cap0 > 0).astype(float),
        "startup": startup.astype(float),
        "vcost": cm.variable_cost[s].astype(float),
        # The kernel charges a unit's fixed cost whenever it has installed capacity.
        "fixed0": np.array(float(np.sum(np.where(has_project | (cap0 <= 0), 0.0, fixed)))),
        "fixed_pu": fixed[pu].astype(float),
        "w_lb": (cap0[pu] > 0).astype(float),
        "p_new": (cm.project_capacity[s] > 0).astype(float),
        "pfixed": cm.project_fixed_cost[s].astype(float),
        "rin": pick(cm.inputs[s], st.inputs),
        "rout": pick(cm.outputs[s], st.outputs),
        "price": price.astype(float),
        "vmax": cm.max_volume[s].astype(float),
        "vmin": vmin.astype(float),
        "penalty": pen.astype(float),
        # Without a penalty the contracted minimum is a hard constraint: no shortfall allowed.
        "shmax": np.where(pen > 0, vmin, 0.0),
        "scap": cm.storage_capacity[s, stored].astype(float),
        "sinit": cm.storage_initial[s, stored].astype(float),
        "hold": cm.holding_cost[s, stored].astype(float),
        "tax_rate": np.array(float(cm.tax_rate[s])),
        "exdep": np.array(float(cm.existing_depreciation[s])),
        "allowed": allowed,
        "bval": bval,
        "depwin": depwin,
        # Capex enters depreciation through one coefficient per project and period, not one
        # per build period: fewer coefficients to change when a scenario varies capex.
        "dep_rate": capex / life,
    }
