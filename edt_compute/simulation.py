"""Balance simulation: a physical plan -> balances, accounts and free cash flow per period.

Vectorized over scenarios (S) and periods (T). The plan comes from the built-in operating rule
or from the MILP (`solvers`); both go through `simulate`, so they report the same quantities.

Conventions (also in docs/finance.md):
- flows are amounts per period; stocks are closing levels; dS/dt = inflow - outflow with flows
  constant within a period, so S_t = S_{t-1} + (inflow - outflow) exactly;
- receivables and payables are first-order lags of revenue and of cash costs with time constant
  `receivable_days` / `payable_days`: dR/dt = revenue_rate - R/tau. For a revenue rate constant
  within the period the exact update is R_t = R_{t-1} e^{-D/tau} + rate tau (1 - e^{-D/tau}),
  D = days per period. They start at zero and are released in the last period;
- tax = tax_rate * max(EBITDA - depreciation, 0) per period (no loss carry-forward);
- capex follows the project's profile from its build period (what would fall after the horizon
  is spent in the last period); depreciation is straight-line from the period the capacity is
  available; the salvage value is received in the last period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edt_compute.compiled import CompiledModel, available_capacity, no_builds
from edt_compute.operating_rule import PhysicalPlan, operate

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


@dataclass
class SimulationResult:
    """Plan and accounts of S scenarios; per-resource flows are derived on demand."""

    cm: CompiledModel
    activity: np.ndarray  # (S, U, T)
    volume: np.ndarray  # (S, M, T)
    stock: np.ndarray  # (S, R, T) closing stock
    accounts: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (S, T)

    @property
    def fcf(self) -> np.ndarray:
        return self.accounts["fcf"]

    @cached_property
    def production(self) -> np.ndarray:
        return np.einsum("sut,sur->srt", self.activity, self.cm.outputs)

    @cached_property
    def consumption(self) -> np.ndarray:
        return np.einsum("sut,sur->srt", self.activity, self.cm.inputs)

    @cached_property
    def purchases(self) -> np.ndarray:
        return _by_resource(self.cm, self.volume, sells=False)

    @cached_property
    def sales(self) -> np.ndarray:
        return _by_resource(self.cm, self.volume, sells=True)


def simulate(
    cm: CompiledModel,
    builds: np.ndarray | None = None,
    plan: PhysicalPlan | None = None,
) -> SimulationResult:
    """Simulate S scenarios. `builds` (S, P) holds each project's build period, -1 = not built."""
    b = no_builds(cm) if builds is None else np.asarray(builds, dtype=np.int64)
    if b.shape != (cm.S, len(cm.projects)):
        raise ValueError(f"builds: expected shape {(cm.S, len(cm.projects))}, got {b.shape}")
    if plan is None:
        plan = operate(cm, available_capacity(cm, b))
    accounts = {k: v.T for k, v in _accounts(cm, b, plan).items()}
    return SimulationResult(cm, plan.activity, plan.volume, plan.stock, accounts)


def _by_resource(cm: CompiledModel, volume: np.ndarray, sells: bool) -> np.ndarray:
    out = np.zeros((cm.S, len(cm.resources), cm.T))
    for m in np.flatnonzero(cm.market_sells == sells):
        out[:, cm.market_resource[m], :] += volume[:, m, :]
    return out


def _tms(x: np.ndarray) -> np.ndarray:
    """(S, K, T) -> (T, K, S), contiguous (free for arrays made period-major)."""
    return np.ascontiguousarray(x.transpose(2, 1, 0))


def _accounts(cm: CompiledModel, builds: np.ndarray, plan: PhysicalPlan) -> dict[str, np.ndarray]:
    """All accounts as (T, S) arrays."""
    S, T = cm.S, cm.T
    a, vol, price, stock = _tms(plan.activity), _tms(plan.volume), _tms(cm.price), _tms(plan.stock)
    revenue, purchase_cost = np.zeros((T, S)), np.zeros((T, S))
    shortfall_cost = np.zeros((T, S))
    for m in range(len(cm.markets)):
        value = vol[:, m] * price[:, m]
        if cm.market_sells[m]:
            revenue += value
        else:
            purchase_cost += value
        if np.any(cm.shortfall_penalty[:, m] > 0):
            shortfall_cost += (
                np.maximum(cm.min_volume[:, m] - vol[:, m], 0.0) * cm.shortfall_penalty[:, m]
            )
    t = np.arange(T)[:, None]
    online = [
        ((b >= 0) & (t >= b + lead)) for b, lead in zip(builds.T, cm.project_lead, strict=True)
    ]
    # Fixed costs of units installed from the start are constant: one (S,) vector, added once.
    expanded = {int(u) for u in cm.project_unit}
    constant = np.zeros(S)
    fixed_cost = np.zeros((T, S))
    for u in range(len(cm.units)):
        if u in expanded:
            installed = np.broadcast_to(cm.capacity[:, u] > 0, (T, S)).copy()
            for q in np.flatnonzero(cm.project_unit == u):
                installed |= online[q] & (cm.project_capacity[:, q] > 0)
            fixed_cost += installed * cm.fixed_cost[:, u]
        else:
            constant += (cm.capacity[:, u] > 0) * cm.fixed_cost[:, u]
    for p, on in enumerate(online):
        fixed_cost += cm.project_fixed_cost[:, p] * on
    fixed_cost += constant
    variable_cost, startup_cost = np.zeros((T, S)), np.zeros((T, S))
    for u in range(len(cm.units)):
        variable_cost += a[:, u] * cm.variable_cost[:, u]
        if np.any(cm.startup_cost[:, u] > 0):
            au = a[:, u]
            running = au > 1e-9 * np.maximum(au.max(axis=0), 1.0)
            was = np.concatenate([(cm.capacity[:, u] > 0)[None], running[:-1]], axis=0)
            startup_cost += (running & ~was) * cm.startup_cost[:, u]
    holding_cost = np.zeros((T, S))
    for r in np.flatnonzero(np.any(cm.holding_cost > 0, axis=0)):
        holding_cost += stock[:, r] * cm.holding_cost[:, r]
    ebitda = revenue - purchase_cost
    for cost in (variable_cost, fixed_cost, startup_cost, holding_cost, shortfall_cost):
        ebitda -= cost

    capex, depreciation, salvage = _investment(cm, builds)
    depreciation += cm.existing_depreciation
    tax = cm.tax_rate * np.maximum(ebitda - depreciation, 0.0)
    receivables = lag_balance(revenue, cm.receivable_days, cm.days_per_period)
    payables = lag_balance(purchase_cost + variable_cost, cm.payable_days, cm.days_per_period)
    wc = receivables - payables
    delta_wc = np.diff(wc, axis=0, prepend=0.0)
    delta_wc[-1] -= wc[-1]  # release working capital at the horizon
    fcf = ebitda - tax - capex + salvage - delta_wc
    return {
        "revenue": revenue,
        "purchase_cost": purchase_cost,
        "variable_cost": variable_cost,
        "fixed_cost": fixed_cost,
        "startup_cost": startup_cost,
        "holding_cost": holding_cost,
        "shortfall_cost": shortfall_cost,
        "ebitda": ebitda,
        "depreciation": depreciation,
        "tax": tax,
        "capex": capex,
        "salvage": salvage,
        "receivables": receivables,
        "payables": payables,
        "delta_working_capital": delta_wc,
        "fcf": fcf,
    }


def _investment(cm: CompiledModel, builds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capex, project depreciation and salvage as (T, S) arrays."""
    S, T = cm.S, cm.T
    capex, dep, salvage = np.zeros((T, S)), np.zeros((T, S)), np.zeros((T, S))
    cols = np.arange(S)
    t = np.arange(T)[:, None]
    for p in range(len(cm.projects)):
        b = builds[:, p]
        built = b >= 0
        if not built.any():
            continue
        for k, share in enumerate(cm.capex_profiles[p]):
            when = np.minimum(b + k, T - 1)
            np.add.at(capex, (when[built], cols[built]), cm.project_capex[built, p] * share)
        start = b + cm.project_lead[p]
        life = cm.project_life_periods[:, p]
        active = built & (t >= start) & (t < start + life)
        dep += active * (cm.project_capex[:, p] / life)
        salvage[-1] += np.where(built, cm.project_salvage[:, p], 0.0)
    return capex, dep, salvage


def lag_balance(flow: np.ndarray, tau_days: np.ndarray, days_per_period: float) -> np.ndarray:
    """Closing balance (T, S) of a first-order lag fed by `flow` (T, S) per period, exactly."""
    tau = np.asarray(tau_days, dtype=float).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = np.where(tau > 0, np.exp(-days_per_period / np.where(tau > 0, tau, 1.0)), 0.0)
        gain = np.where(tau > 0, tau / days_per_period * (1.0 - decay), 0.0)
    out = np.empty_like(flow)
    level = np.zeros(flow.shape[1])
    for t in range(flow.shape[0]):
        level = level * decay + flow[t] * gain
        out[t] = level
    return out


def balance_residual(cm: CompiledModel, res: SimulationResult) -> np.ndarray:
    """inflow - outflow - change in stock, (S, R, T); zero when the balance closes."""
    opening = np.concatenate([cm.storage_initial[:, :, None], res.stock[:, :, :-1]], axis=2)
    return res.production + res.purchases - res.consumption - res.sales - (res.stock - opening)
