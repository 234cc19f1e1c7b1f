"""Random small instances against scipy.optimize.milp on an independently assembled matrix.

The reference is written from the kernel's conventions, not from the solver's code: it uses a
McCormick product (on x online) instead of big-M rows for the expanded unit, builds the
objective from EBITDA expressions directly, and gets the working-capital weights by pushing
unit impulses through the kernel's own `lag_balance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.finance import npv, period_rate
from edt_compute.library import load_model
from edt_compute.operating_rule import PhysicalPlan
from edt_compute.simulation import balance_residual, lag_balance, simulate
from solvers import PlanningModel, SolverOptions, SolveStatus
from solvers.data import MIN_RUNNING_SHARE


def _random_model(rng: np.random.Generator) -> dict[str, Any]:
    T = int(rng.integers(2, 6))
    u = rng.uniform
    b_capacity = 0.0 if rng.random() < 0.3 else round(u(5, 15), 2)
    pen = 0.0 if rng.random() < 0.3 else round(u(0.1, 1.0), 3)
    tank = round(u(0, 10), 2)
    return {
        "name": "random_chain",
        "resources": [{"name": n} for n in ("raw", "mid", "prod")],
        "units": [
            {
                "name": "a",
                "inputs": {"raw": round(u(0.8, 1.5), 3)},
                "outputs": {"mid": 1.0},
                "capacity": round(u(10, 30), 2),
                "availability": round(u(0.8, 1.0), 3),
                "min_load": round(u(0, 0.7), 2),
                "variable_cost": round(u(0, 0.2), 3),
                "fixed_cost": round(u(0, 2), 2),
                "startup_cost": round(u(0, 3), 2),
            },
            {
                "name": "b",
                "inputs": {"mid": round(u(1.0, 1.4), 3)},
                "outputs": {"prod": 1.0},
                "capacity": b_capacity,
                "availability": round(u(0.85, 1.0), 3),
                "min_load": round(u(0, 0.6), 2),
                "variable_cost": round(u(0, 0.3), 3),
                "fixed_cost": round(u(0, 2), 2),
                "startup_cost": round(u(0, 3), 2),
            },
        ],
        "storages": [
            {
                "name": "tank",
                "resource": "mid",
                "capacity": tank,
                "initial": round(u(0, 0.5) * tank, 2),
                "holding_cost": round(u(0, 0.1), 3),
            }
        ],
        "markets": [
            {
                "name": "raw_buy",
                "resource": "raw",
                "side": "buy",
                "price": round(u(0.5, 1.5), 3),
                "escalation": round(u(-0.05, 0.1), 3),
            },
            {
                "name": "prod_sell",
                "resource": "prod",
                "side": "sell",
                "price": round(u(2.0, 4.5), 3),
                "max_volume": round(u(10, 25), 2),
                "min_volume": round(u(0, 12), 2),
                "shortfall_penalty": pen,
            },
            {
                "name": "mid_sell",
                "resource": "mid",
                "side": "sell",
                "price": round(u(-0.5, 1.8), 3),
                "max_volume": round(u(0, 10), 2),
            },
        ],
        "projects": [
            {
                "name": "expand_b",
                "unit": "b",
                "capacity": round(u(5, 15), 2),
                "capex": round(u(5, 60), 2),
                "capex_profile": [0.5, 0.5] if rng.random() < 0.5 else [1.0],
                "lead_time": int(rng.integers(0, 3)),
                "life_years": round(u(0.5, 3), 2),
                "salvage_value": round(u(0, 5), 2),
                "fixed_cost": round(u(0, 1), 2),
                "earliest_period": 0,
                "latest_period": T - 1,
            },
        ],
        "finance": {
            "horizon": T,
            "period": str(rng.choice(["year", "quarter"])),
            "discount_rate": round(u(0, 0.15), 3),
            "tax_rate": round(u(0, 0.35), 3),
            "receivable_days": round(u(0, 60), 1),
            "payable_days": round(u(0, 60), 1),
            "existing_depreciation": round(u(0, 3), 2),
        },
    }


class _Matrix:
    """Variables and rows of the reference problem, assembled one entry at a time."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, lb: float = 0.0, ub: float = np.inf, integer: bool = False) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(int(integer))
        return len(self.lb) - 1

    def row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        self.rows.append((coefs, lo, hi))


def _add(into: dict[int, float], coefs: dict[int, float], scale: float = 1.0) -> None:
    for j, c in coefs.items():
        into[j] = into.get(j, 0.0) + scale * c


def _wc_weights(tau: float, disc: np.ndarray, dpp: float) -> np.ndarray:
    """NPV of the kernel's -delta(working capital) per unit flow in each period, by impulses."""
    T = disc.size
    out = np.zeros(T)
    for k in range(T):
        impulse = np.zeros((T, 1))  # the kernel's lag runs period-major: (T, S)
        impulse[k, 0] = 1.0
        wc = lag_balance(impulse, np.array([tau]), dpp)[:, 0]
        delta = np.diff(wc, prepend=0.0)
        delta[-1] -= wc[-1]
        out[k] = -float(np.sum(disc * delta))
    return out


def _reference(cm: CompiledModel) -> tuple[str, float, np.ndarray, PhysicalPlan | None]:
    """Status, NPV, builds and plan of an S=1 random chain model."""
    T = cm.T
    A, B = cm.units.index("a"), cm.units.index("b")
    raw, mid, prod = (cm.resources.index(r) for r in ("raw", "mid", "prod"))
    rawbuy, prodsell, midsell = (cm.markets.index(m) for m in ("raw_buy", "prod_sell", "mid_sell"))
    disc = (1.0 + float(period_rate(cm.discount_rate[0], cm.periods_per_year))) ** -np.arange(T)
    w_rev = _wc_weights(float(cm.receivable_days[0]), disc, cm.days_per_period)
    w_pay = -_wc_weights(float(cm.payable_days[0]), disc, cm.days_per_period)
    mx = _Matrix()
    price, vmax = cm.price[0], cm.max_volume[0]
    x = {(u, t): mx.var() for u in (A, B) for t in range(T)}
    on = {(u, t): mx.var(0, 1, True) for u in (A, B) for t in range(T)}
    start = {(u, t): mx.var(0, 1) for u in (A, B) for t in range(T)}
    z = {t: mx.var(0, 1) for t in range(T)}  # on[B, t] * online[t]
    v = {(m, t): mx.var(0, vmax[m]) for m in (rawbuy, prodsell, midsell) for t in range(T)}
    pen, vmin = cm.shortfall_penalty[0, prodsell], cm.min_volume[0, prodsell]
    sh = {t: mx.var(0, vmin if pen > 0 else 0.0) for t in range(T)}
    stock = {t: mx.var(0, cm.storage_capacity[0, mid]) for t in range(T)}
    lo, hi = (
        int(cm.model.projects[0].earliest_period),
        int(cm.model.projects[0].latest_period or T - 1),
    )
    build = {b: mx.var(0, 1.0 if lo <= b <= hi else 0.0, True) for b in range(T)}
    tax = {t: mx.var() for t in range(T)}
    lead = int(cm.project_lead[0])
    online = {t: {build[b]: 1.0 for b in range(t - lead + 1)} for t in range(T)}
    mx.row(dict.fromkeys(build.values(), 1.0), -np.inf, 1.0)

    avail, cap0, ml, sc = cm.availability[0], cm.capacity[0], cm.min_load[0], cm.startup_cost[0]
    floor = np.where(sc > 0, np.maximum(ml, MIN_RUNNING_SHARE), ml)
    pc = float(cm.project_capacity[0, 0]) * avail[B]
    for t in range(T):
        mx.row({x[A, t]: 1.0, on[A, t]: -cap0[A] * avail[A]}, -np.inf, 0.0)
        mx.row({x[A, t]: 1.0, on[A, t]: -floor[A] * cap0[A] * avail[A]}, 0.0, np.inf)
        mx.row({on[A, t]: 1.0}, -np.inf, float(cap0[A] * avail[A] > 0))
        mx.row({x[B, t]: 1.0, on[B, t]: -cap0[B] * avail[B], z[t]: -pc}, -np.inf, 0.0)
        mx.row(
            {x[B, t]: 1.0, on[B, t]: -floor[B] * cap0[B] * avail[B], z[t]: -floor[B] * pc},
            0.0,
            np.inf,
        )
        mx.row({z[t]: 1.0, on[B, t]: -1.0}, -np.inf, 0.0)
        mx.row({z[t]: 1.0, **{j: -c for j, c in online[t].items()}}, -np.inf, 0.0)
        mx.row({z[t]: 1.0, on[B, t]: -1.0, **{j: -c for j, c in online[t].items()}}, -1.0, np.inf)
        mx.row(
            {on[B, t]: 1.0, **{j: -c for j, c in online[t].items()}},
            -np.inf,
            float(cap0[B] * avail[B] > 0),
        )
        for u in (A, B):
            prev = {on[u, t - 1]: 1.0} if t > 0 else {}
            mx.row(
                {start[u, t]: 1.0, on[u, t]: -1.0, **prev},
                -float(cap0[u] > 0) if t == 0 else 0.0,
                np.inf,
            )
        mx.row({v[rawbuy, t]: 1.0, x[A, t]: -cm.inputs[0, A, raw]}, 0.0, 0.0)
        opening = {stock[t - 1]: 1.0} if t > 0 else {}
        init = cm.storage_initial[0, mid] if t == 0 else 0.0
        mx.row(
            {
                x[A, t]: cm.outputs[0, A, mid],
                x[B, t]: -cm.inputs[0, B, mid],
                v[midsell, t]: -1.0,
                stock[t]: -1.0,
                **opening,
            },
            -init,
            -init,
        )
        mx.row({x[B, t]: cm.outputs[0, B, prod], v[prodsell, t]: -1.0}, 0.0, 0.0)
        mx.row({v[prodsell, t]: 1.0, sh[t]: 1.0}, vmin, np.inf)

    n = len(mx.lb)
    c = np.zeros(n)
    constant = 0.0
    capex, life = float(cm.project_capex[0, 0]), int(cm.project_life_periods[0, 0])
    for t in range(T):
        rev = {v[prodsell, t]: price[prodsell, t], v[midsell, t]: price[midsell, t]}
        pay = {
            v[rawbuy, t]: price[rawbuy, t],
            x[A, t]: cm.variable_cost[0, A],
            x[B, t]: cm.variable_cost[0, B],
        }
        ebitda: dict[int, float] = {}
        _add(ebitda, rev)
        _add(ebitda, pay, -1.0)
        _add(
            ebitda,
            {start[A, t]: sc[A], start[B, t]: sc[B], stock[t]: cm.holding_cost[0, mid], sh[t]: pen},
            -1.0,
        )
        _add(ebitda, online[t], -float(cm.project_fixed_cost[0, 0]))
        fixed = cm.fixed_cost[0, A] * (cap0[A] > 0)
        if cap0[B] > 0:
            fixed += cm.fixed_cost[0, B]
        else:
            _add(ebitda, online[t], -float(cm.fixed_cost[0, B]))
        dep = {build[b]: capex / life for b in range(T) if b + lead <= t < b + lead + life}
        rate = float(cm.tax_rate[0])
        taxable: dict[int, float] = {tax[t]: 1.0}
        _add(taxable, ebitda, -rate)
        _add(taxable, dep, rate)
        mx.row(taxable, -rate * fixed - rate * float(cm.existing_depreciation[0]), np.inf)
        for j, coef in ebitda.items():
            c[j] += disc[t] * coef
        constant -= disc[t] * fixed
        c[tax[t]] -= disc[t]
        for j, coef in rev.items():
            c[j] += w_rev[t] * coef
        for j, coef in pay.items():
            c[j] += w_pay[t] * coef
    for b in range(T):
        paid = sum(share * disc[min(b + k, T - 1)] for k, share in enumerate(cm.capex_profiles[0]))
        c[build[b]] += -capex * paid + float(cm.project_salvage[0, 0]) * disc[-1]

    A_mat = np.zeros((len(mx.rows), n))
    for i, (coefs, _, _) in enumerate(mx.rows):
        for j, coef in coefs.items():
            A_mat[i, j] += coef
    res = milp(
        -c,
        constraints=LinearConstraint(A_mat, [r[1] for r in mx.rows], [r[2] for r in mx.rows]),
        integrality=np.array(mx.integer),
        bounds=Bounds(np.array(mx.lb), np.array(mx.ub)),
        options={"mip_rel_gap": 1e-10},
    )
    if res.status == 2:
        return "infeasible", float("nan"), np.array([-1]), None
    assert res.status == 0, res.message
    sol = res.x
    chosen = [b for b in range(T) if sol[build[b]] > 0.5]
    activity = np.array([[sol[x[u, t]] for t in range(T)] for u in (A, B)])
    order = np.argsort([A, B])
    volume = np.zeros((len(cm.markets), T))
    for (m, t), j in v.items():
        volume[m, t] = sol[j]
    stocks = np.zeros((len(cm.resources), T))
    stocks[mid] = [sol[stock[t]] for t in range(T)]
    plan = PhysicalPlan(activity[order][None], volume[None], stocks[None])
    return "optimal", float(-res.fun + constant), np.array(chosen[:1] or [-1]), plan


def _kernel_npv(cm: CompiledModel, builds: np.ndarray, plan: PhysicalPlan) -> float:
    sim = simulate(cm, builds[None, :], plan)
    return float(npv(period_rate(cm.discount_rate, cm.periods_per_year), sim.fcf)[0])


@pytest.mark.parametrize("seed", range(16))
def test_random_instance_matches_an_independent_scipy_milp(seed: int) -> None:
    model = load_model(_random_model(np.random.default_rng(seed)))
    cm = compile_model(model, 1)
    status, objective, ref_builds, ref_plan = _reference(cm)
    res = PlanningModel(model, SolverOptions(mip_gap=1e-10)).solve(cm, 0)
    assert res.status.value == status
    if status == "optimal":
        assert ref_plan is not None  # the reference is itself consistent with the kernel
        assert _kernel_npv(cm, ref_builds, ref_plan) == pytest.approx(objective, rel=1e-6, abs=1e-6)
        assert res.objective == pytest.approx(objective, rel=1e-6, abs=1e-6)
        assert res.plan is not None
        assert (
            np.abs(balance_residual(cm, simulate(cm, res.builds[None, :], res.plan))).max() < 1e-7
        )
        assert res.objective == pytest.approx(
            _kernel_npv(cm, res.builds, res.plan), rel=1e-6, abs=1e-6
        )


def test_random_instances_cover_builds_shutdowns_and_infeasibility() -> None:
    """Guard against a generator that only produces easy cases."""
    seen: set[str] = set()
    for seed in range(16):
        model = load_model(_random_model(np.random.default_rng(seed)))
        cm = compile_model(model, 1)
        res = PlanningModel(model, SolverOptions(mip_gap=1e-10)).solve(cm, 0)
        if res.status is SolveStatus.INFEASIBLE:
            seen.add("infeasible")
            continue
        assert res.plan is not None
        seen.add("built" if res.builds[0] >= 0 else "not built")
        if (res.plan.activity[0] <= 1e-9).any():
            seen.add("unit off")
    assert seen == {"infeasible", "built", "not built", "unit off"}
