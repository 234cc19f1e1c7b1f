"""The planning and investment MILP as a Pyomo model.

This is the single statement of the formulation. Every scenario number enters as a mutable
Param named as in `solvers.data.scenario_params`, so the same model can be compiled once to a
parametric HiGHS matrix (`solvers.compile`) or, the slow way, rebuilt and solved per scenario.

Variables per period t: activity x[u,t], on/off on[u,t] (binary), start[u,t], market volume
v[m,t] and shortfall sh[m,t], closing stock stock[k,t] of stored resources, installed
indicator w[j,t] of units that projects expand, build[p,b] (binary: project p built in period
b), depreciating[p,t] (1 while project p is depreciated), and accounts rev, pay (purchases +
variable costs), ebitda, dep (depreciation), tax.

Objective: the NPV of the kernel's free cash flow,
  sum_t disc_t (ebitda_t - tax_t) + w_rev_t rev_t + w_pay_t pay_t + sum_{p,b} bval[p,b] build[p,b]
where w_rev / w_pay carry the working-capital lags and bval the capex and salvage. Tax is
max(tax_rate (ebitda - dep), 0) exactly: tax_t >= both terms and the objective pushes it down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyomo.environ as pyo

from solvers.structure import MilpStructure

# Pyomo ships no type information; its expressions are Any to mypy.
Expr = Any


def _add_params(m: pyo.ConcreteModel, params: Mapping[str, np.ndarray]) -> None:
    for name, arr in params.items():
        a = np.asarray(arr, dtype=float)
        if a.ndim == 0:
            m.add_component(name, pyo.Param(mutable=True, initialize=float(a), within=pyo.Reals))
            continue
        init = {(idx[0] if a.ndim == 1 else idx): float(v) for idx, v in np.ndenumerate(a)}
        sets = [range(n) for n in a.shape]
        m.add_component(name, pyo.Param(*sets, mutable=True, initialize=init, within=pyo.Reals))


def build_formulation(st: MilpStructure, params: Mapping[str, np.ndarray]) -> pyo.ConcreteModel:
    """The Pyomo model of one scenario's numbers (`params` from `scenario_params`)."""
    m = pyo.ConcreteModel(name="edt_planning")
    _add_params(m, params)
    _variables(m, st)
    _plant_rows(m, st)
    _balance_rows(m, st)
    _account_rows(m, st)
    _objective(m, st)
    return m


def _online(m: pyo.ConcreteModel, st: MilpStructure, p: int, t: int) -> Expr:
    """1 if project p's capacity is available in period t (built by t - lead)."""
    return sum((m.build[p, b] for b in range(t - st.project_lead[p] + 1)), start=0.0)


def _added(m: pyo.ConcreteModel, st: MilpStructure, u: int, t: int, coef: Any) -> Expr:
    """What the projects online in period t add to unit u, each `coef[p]`."""
    return sum((coef[p] * _online(m, st, p, t) for p in st.projects_of(u)), start=0.0)


def _ranges(st: MilpStructure) -> tuple[range, range, range, range]:
    """Index ranges of periods, units, markets and projects."""
    return range(st.T), range(len(st.units)), range(len(st.markets)), range(len(st.projects))


def _variables(m: pyo.ConcreteModel, st: MilpStructure) -> None:
    TT, UU, MM, PP = _ranges(st)
    m.x = pyo.Var(UU, TT, within=pyo.NonNegativeReals)
    m.on = pyo.Var(UU, TT, within=pyo.Binary, bounds=lambda m, u, t: (0, m.onmax[u]))
    m.start = pyo.Var(UU, TT, bounds=(0, 1))
    m.v = pyo.Var(MM, TT, bounds=lambda m, k, t: (0, m.vmax[k]))
    m.sh = pyo.Var(MM, TT, bounds=lambda m, k, t: (0, m.shmax[k]))
    m.stock = pyo.Var(range(len(st.stored)), TT, bounds=lambda m, k, t: (0, m.scap[k]))
    m.w = pyo.Var(range(len(st.project_units)), TT, bounds=lambda m, j, t: (m.w_lb[j], 1))
    m.build = pyo.Var(PP, TT, within=pyo.Binary, bounds=lambda m, p, b: (0, m.allowed[p, b]))
    m.depreciating = pyo.Var(PP, TT, bounds=(0, 1))
    m.rev = pyo.Var(TT)
    m.pay = pyo.Var(TT)
    m.ebitda = pyo.Var(TT)
    m.dep = pyo.Var(TT)
    m.tax = pyo.Var(TT, within=pyo.NonNegativeReals)


def _plant_rows(m: pyo.ConcreteModel, st: MilpStructure) -> None:
    """Capacity, minimum load, start-ups, installed capacity, one build per project."""
    TT, UU, PP = range(st.T), range(len(st.units)), range(len(st.projects))
    pu = st.project_units
    # A unit no project expands has bigm = cap and no cap_row, so on_cap and min_load read
    # floor cap on <= x <= cap on. With projects, cap_row bounds x by the capacity online,
    # x <= bigm on switches the unit off, and the min-load row is relaxed by floor bigm when
    # off (bigm >= any capacity the unit can reach).
    m.cap_row = pyo.Constraint(
        [(u, t) for u in pu for t in TT],
        rule=lambda m, u, t: m.x[u, t] <= m.cap[u] + _added(m, st, u, t, m.pcap),
    )
    m.on_cap = pyo.Constraint(UU, TT, rule=lambda m, u, t: m.x[u, t] <= m.bigm[u] * m.on[u, t])
    m.min_load = pyo.Constraint(
        UU,
        TT,
        rule=lambda m, u, t: (
            m.x[u, t]
            - m.floor[u] * _added(m, st, u, t, m.pcap)
            - m.floor[u] * m.bigm[u] * m.on[u, t]
            >= m.floor[u] * m.cap[u] - m.floor[u] * m.bigm[u]
        ),
    )
    # A unit without capacity cannot be "on": that would dodge a start-up cost the kernel counts.
    m.on_avail = pyo.Constraint(
        [(u, t) for u in pu for t in TT],
        rule=lambda m, u, t: m.on[u, t] - _added(m, st, u, t, m.p_on) <= m.has_cap[u],
    )
    m.startup_row = pyo.Constraint(
        UU,
        TT,
        rule=lambda m, u, t: (
            m.start[u, t] - m.on[u, t] + (m.on[u, t - 1] if t > 0 else m.init_on[u]) >= 0
        ),
    )
    m.installed = pyo.Constraint(
        [(j, p, t) for j, u in enumerate(pu) for p in st.projects_of(u) for t in TT],
        rule=lambda m, j, p, t: m.w[j, t] - m.p_new[p] * _online(m, st, p, t) >= 0,
    )
    m.once = pyo.Constraint(PP, rule=lambda m, p: sum(m.build[p, b] for b in TT) <= 1)


def _balance_rows(m: pyo.ConcreteModel, st: MilpStructure) -> None:
    """Market shortfalls, and the balance of every resource something touches."""
    TT, MM = range(st.T), range(len(st.markets))
    stored = {r: k for k, r in enumerate(st.stored)}
    m.shortfall = pyo.Constraint(MM, TT, rule=lambda m, k, t: m.v[k, t] + m.sh[k, t] >= m.vmin[k])

    def balance(m: pyo.ConcreteModel, r: int, t: int) -> Expr:
        flow: Expr = 0.0
        for i, (u, rr) in enumerate(st.outputs):
            if rr == r:
                flow += m.rout[i] * m.x[u, t]
        for i, (u, rr) in enumerate(st.inputs):
            if rr == r:
                flow -= m.rin[i] * m.x[u, t]
        for k in MM:
            if st.market_resource[k] == r:
                flow += -m.v[k, t] if st.market_sells[k] else m.v[k, t]
        if r in stored:
            k = stored[r]
            flow += (m.stock[k, t - 1] if t > 0 else m.sinit[k]) - m.stock[k, t]
        return flow == 0

    touched = (
        {r for _, r in st.inputs}
        | {r for _, r in st.outputs}
        | set(st.market_resource)
        | set(stored)
    )
    m.balance = pyo.Constraint([(r, t) for r in sorted(touched) for t in TT], rule=balance)


def _account_rows(m: pyo.ConcreteModel, st: MilpStructure) -> None:
    """Revenue, payments, EBITDA, depreciation and tax per period, as the kernel's accounts."""
    TT, UU, MM, PP = _ranges(st)
    n_pu, n_stored = len(st.project_units), len(st.stored)
    sells = [k for k in MM if st.market_sells[k]]
    buys = [k for k in MM if not st.market_sells[k]]
    m.rev_def = pyo.Constraint(
        TT, rule=lambda m, t: m.rev[t] == sum((m.price[k, t] * m.v[k, t] for k in sells), start=0.0)
    )
    m.pay_def = pyo.Constraint(
        TT,
        rule=lambda m, t: (
            m.pay[t]
            == sum((m.price[k, t] * m.v[k, t] for k in buys), start=0.0)
            + sum((m.vcost[u] * m.x[u, t] for u in UU), start=0.0)
        ),
    )

    def ebitda(m: pyo.ConcreteModel, t: int) -> Expr:
        costs = (
            m.fixed0
            + sum((m.fixed_pu[j] * m.w[j, t] for j in range(n_pu)), start=0.0)
            + sum((m.pfixed[p] * _online(m, st, p, t) for p in PP), start=0.0)
            + sum((m.startup[u] * m.start[u, t] for u in UU), start=0.0)
            + sum((m.hold[k] * m.stock[k, t] for k in range(n_stored)), start=0.0)
            + sum((m.penalty[k] * m.sh[k, t] for k in MM), start=0.0)
        )
        return m.ebitda[t] == m.rev[t] - m.pay[t] - costs

    m.ebitda_def = pyo.Constraint(TT, rule=ebitda)
    m.dep_window = pyo.Constraint(
        PP,
        TT,
        rule=lambda m, p, t: (
            m.depreciating[p, t]
            == sum(
                (m.depwin[p, b, t] * m.build[p, b] for b in range(t - st.project_lead[p] + 1)),
                start=0.0,
            )
        ),
    )
    m.dep_def = pyo.Constraint(
        TT,
        rule=lambda m, t: (
            m.dep[t] == m.exdep + sum((m.dep_rate[p] * m.depreciating[p, t] for p in PP), start=0.0)
        ),
    )
    m.tax_row = pyo.Constraint(
        TT, rule=lambda m, t: m.tax[t] - m.tax_rate * (m.ebitda[t] - m.dep[t]) >= 0
    )


def _objective(m: pyo.ConcreteModel, st: MilpStructure) -> None:
    TT, PP = range(st.T), range(len(st.projects))
    m.npv = pyo.Objective(
        expr=sum(
            m.disc[t] * (m.ebitda[t] - m.tax[t]) + m.w_rev[t] * m.rev[t] + m.w_pay[t] * m.pay[t]
            for t in TT
        )
        + sum((m.bval[p, b] * m.build[p, b] for p in PP for b in TT), start=0.0),
        sense=pyo.maximize,
    )
