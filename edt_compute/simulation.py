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

import numpy as np

from edt_compute.compiled import CompiledModel, available_capacity, no_builds, project_online
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


@dataclass(frozen=True)
class SimulationResult:
    activity: np.ndarray  # (S, U, T)
    volume: np.ndarray  # (S, M, T)
    stock: np.ndarray  # (S, R, T) closing stock
    production: np.ndarray  # (S, R, T)
    consumption: np.ndarray  # (S, R, T)
    purchases: np.ndarray  # (S, R, T)
    sales: np.ndarray  # (S, R, T)
    accounts: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (S, T)

    @property
    def fcf(self) -> np.ndarray:
        return self.accounts["fcf"]


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
    return _account(cm, b, plan)


def _by_resource(cm: CompiledModel, volume: np.ndarray, side: bool) -> np.ndarray:
    out = np.zeros((cm.S, len(cm.resources), cm.T))
    for m in np.flatnonzero(cm.market_sells == side):
        out[:, cm.market_resource[m], :] += volume[:, m, :]
    return out


def _account(cm: CompiledModel, builds: np.ndarray, plan: PhysicalPlan) -> SimulationResult:
    S, T = cm.S, cm.T
    a, vol = plan.activity, plan.volume
    production = np.einsum("sut,sur->srt", a, cm.outputs)
    consumption = np.einsum("sut,sur->srt", a, cm.inputs)
    purchases = _by_resource(cm, vol, False)
    sales = _by_resource(cm, vol, True)
    stock = plan.stock

    sells = cm.market_sells
    revenue = np.einsum("smt,smt->st", vol[:, sells], cm.price[:, sells])
    purchase_cost = np.einsum("smt,smt->st", vol[:, ~sells], cm.price[:, ~sells])
    variable_cost = np.einsum("sut,su->st", a, cm.variable_cost)
    t = np.arange(T)
    online = np.stack([project_online(builds[:, p], int(cm.project_lead[p]), t) for p in range(len(cm.projects))], axis=1) if cm.projects else np.zeros((S, 0, T))
    installed = np.repeat(cm.capacity[:, :, None], T, axis=2)
    for p in range(len(cm.projects)):
        installed[:, cm.project_unit[p], :] += cm.project_capacity[:, p, None] * online[:, p, :]
    fixed_cost = np.einsum("sut,su->st", (installed > 0).astype(float), cm.fixed_cost)
    fixed_cost += np.einsum("spt,sp->st", online, cm.project_fixed_cost)
    running = a > _running_threshold(a)
    was = np.concatenate([(cm.capacity > 0)[:, :, None], running[:, :, :-1]], axis=2)
    startup_cost = np.einsum("sut,su->st", (running & ~was).astype(float), cm.startup_cost)
    holding_cost = np.einsum("srt,sr->st", stock, cm.holding_cost)
    shortfall = np.maximum(cm.min_volume[:, :, None] - vol, 0.0)
    shortfall_cost = np.einsum("smt,sm->st", shortfall, cm.shortfall_penalty)
    ebitda = revenue - purchase_cost - variable_cost - fixed_cost - startup_cost - holding_cost - shortfall_cost

    capex, depreciation, salvage = _investment(cm, builds)
    depreciation = depreciation + cm.existing_depreciation[:, None]
    tax = cm.tax_rate[:, None] * np.maximum(ebitda - depreciation, 0.0)
    receivables = lag_balance(revenue, cm.receivable_days, cm.days_per_period)
    payables = lag_balance(purchase_cost + variable_cost, cm.payable_days, cm.days_per_period)
    wc = receivables - payables
    delta_wc = np.diff(wc, axis=1, prepend=0.0)
    delta_wc[:, -1] -= wc[:, -1]  # release working capital at the horizon
    fcf = ebitda - tax - capex + salvage - delta_wc
    accounts = {
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
    return SimulationResult(a, vol, stock, production, consumption, purchases, sales, accounts)


def _running_threshold(a: np.ndarray) -> np.ndarray:
    return 1e-9 * np.maximum(a.max(axis=2, keepdims=True), 1.0)


def _investment(cm: CompiledModel, builds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    S, T = cm.S, cm.T
    capex, dep, salvage = np.zeros((S, T)), np.zeros((S, T)), np.zeros((S, T))
    rows = np.arange(S)
    t = np.arange(T)
    for p in range(len(cm.projects)):
        b = builds[:, p]
        built = b >= 0
        for k, share in enumerate(cm.capex_profiles[p]):
            when = np.minimum(b + k, T - 1)
            np.add.at(capex, (rows[built], when[built]), cm.project_capex[built, p] * share)
        start = (b + cm.project_lead[p])[:, None]
        life = cm.project_life_periods[:, p, None]
        active = built[:, None] & (t[None, :] >= start) & (t[None, :] < start + life)
        dep += active * (cm.project_capex[:, p] / cm.project_life_periods[:, p])[:, None]
        salvage[:, -1] += np.where(built, cm.project_salvage[:, p], 0.0)
    return capex, dep, salvage


def lag_balance(flow: np.ndarray, tau_days: np.ndarray, days_per_period: float) -> np.ndarray:
    """Closing balance (S, T) of a first-order lag fed by `flow` per period (exact update)."""
    tau = np.asarray(tau_days, dtype=float).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = np.where(tau > 0, np.exp(-days_per_period / np.where(tau > 0, tau, 1.0)), 0.0)
        gain = np.where(tau > 0, tau / days_per_period * (1.0 - decay), 0.0)
    out = np.empty_like(flow)
    level = np.zeros(flow.shape[0])
    for t in range(flow.shape[1]):
        level = level * decay + flow[:, t] * gain
        out[:, t] = level
    return out


def balance_residual(cm: CompiledModel, res: SimulationResult) -> np.ndarray:
    """inflow - outflow - change in stock, (S, R, T); zero when the balance closes."""
    opening = np.concatenate([cm.storage_initial[:, :, None], res.stock[:, :, :-1]], axis=2)
    return res.production + res.purchases - res.consumption - res.sales - (res.stock - opening)
