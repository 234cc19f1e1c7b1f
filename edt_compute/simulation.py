"""Balance simulation: a physical plan -> balances, accounts and free cash flow per period.

The plan comes from the built-in operating rule or from the MILP (`solvers`); both go through
`simulate`, so they report the same quantities. The loops over scenarios and periods are
compiled with numba (`edt_compute.operating_rule`, `edt_compute.accounts`); each scenario is
computed on its own, so its numbers do not depend on the batch it is computed in.

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

from edt_compute.accounts import ACCOUNTS, accounts, lag_coefficients, lag_rows
from edt_compute.compiled import CompiledModel, no_builds
from edt_compute.operating_rule import PhysicalPlan, operate

__all__ = ["SimulationResult", "balance_residual", "lag_balance", "simulate"]


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
        plan = operate(cm, b)
    table = accounts(cm, b, plan.activity, plan.volume, plan.stock)
    return SimulationResult(
        cm,
        plan.activity,
        plan.volume,
        plan.stock,
        {name: table[k] for k, name in enumerate(ACCOUNTS)},
    )


def _by_resource(cm: CompiledModel, volume: np.ndarray, sells: bool) -> np.ndarray:
    out = np.zeros((cm.S, len(cm.resources), cm.T))
    for m in np.flatnonzero(cm.market_sells == sells):
        out[:, cm.market_resource[m], :] += volume[:, m, :]
    return out


def lag_balance(flow: np.ndarray, tau_days: np.ndarray, days_per_period: float) -> np.ndarray:
    """Closing balance (T, S) of a first-order lag fed by `flow` (T, S) per period, exactly."""
    decay, gain = lag_coefficients(tau_days, days_per_period)
    rows = np.ascontiguousarray(np.asarray(flow, dtype=np.float64).T)
    out = np.empty_like(rows)
    lag_rows(rows, np.broadcast_to(decay, rows.shape[:1]).copy(),
             np.broadcast_to(gain, rows.shape[:1]).copy(), out)  # fmt: skip
    return out.T


def balance_residual(cm: CompiledModel, res: SimulationResult) -> np.ndarray:
    """inflow - outflow - change in stock, (S, R, T); zero when the balance closes."""
    opening = np.concatenate([cm.storage_initial[:, :, None], res.stock[:, :, :-1]], axis=2)
    return res.production + res.purchases - res.consumption - res.sales - (res.stock - opening)
