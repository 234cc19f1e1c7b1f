"""Balance simulation: balances close, lags are exact, small cases match hand calculations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from edt_compute.compiled import compile_model
from edt_compute.library import load_model
from edt_compute.model import EnterpriseModel
from edt_compute.simulation import balance_residual, lag_balance, simulate


def _model(**over: Any) -> EnterpriseModel:
    """One unit turning gas into product; numbers chosen to be checked by hand."""
    data: dict[str, Any] = {
        "name": "hand",
        "resources": [{"name": "gas"}, {"name": "product"}],
        "units": [
            {
                "name": "plant",
                "inputs": {"gas": 2.0},
                "outputs": {"product": 1.0},
                "capacity": 10.0,
                "availability": 0.9,
                "variable_cost": 1.0,
                "fixed_cost": 5.0,
            }
        ],
        "markets": [
            {"name": "gas_buy", "resource": "gas", "side": "buy", "price": 3.0},
            {"name": "sales", "resource": "product", "side": "sell", "price": 20.0},
        ],
        "finance": {"horizon": 3, "period": "year", "discount_rate": 0.1, "tax_rate": 0.2},
    }
    for key, value in over.items():
        data[key] = value
    return EnterpriseModel.model_validate(data)


def test_hand_checked_single_unit() -> None:
    res = simulate(compile_model(_model(), 1))
    # 9 units of activity (10 x 0.9): 18 gas at 3, 9 product at 20, variable 9, fixed 5.
    assert np.allclose(res.activity[0, 0], 9.0)
    ebitda = 9 * 20 - 18 * 3 - 9 * 1 - 5
    assert np.allclose(res.accounts["ebitda"][0], ebitda)
    assert np.allclose(res.accounts["tax"][0], 0.2 * ebitda)
    assert np.allclose(res.fcf[0], 0.8 * ebitda)


def test_demand_limits_production_and_storage_fills_first() -> None:
    markets = [
        {"name": "gas_buy", "resource": "gas", "side": "buy", "price": 3.0},
        {"name": "sales", "resource": "product", "side": "sell", "price": 20.0, "max_volume": 6.0},
    ]
    storages = [{"name": "tank", "resource": "product", "capacity": 2.0, "initial": 0.0}]
    res = simulate(compile_model(_model(markets=markets, storages=storages), 1))
    p = 1  # product
    # Period 0: 6 sold + 2 stored -> activity 8. Then the tank is full: activity 6.
    assert np.allclose(res.activity[0, 0], [8.0, 6.0, 6.0])
    assert np.allclose(res.stock[0, p], [2.0, 2.0, 2.0])
    assert np.allclose(res.sales[0, p], [6.0, 6.0, 6.0])


def test_minimum_load_shuts_a_unit_down_instead_of_running_below_it() -> None:
    markets = [
        {"name": "gas_buy", "resource": "gas", "side": "buy", "price": 3.0},
        {"name": "sales", "resource": "product", "side": "sell", "price": 20.0, "max_volume": 3.0},
    ]
    units = [
        {
            "name": "plant",
            "inputs": {"gas": 2.0},
            "outputs": {"product": 1.0},
            "capacity": 10.0,
            "min_load": 0.5,
            "startup_cost": 7.0,
        }
    ]
    res = simulate(compile_model(_model(markets=markets, units=units), 1))
    assert np.allclose(res.activity[0, 0], 0.0)  # 3 < 5 = min load x capacity
    assert np.allclose(res.accounts["revenue"][0], 0.0)


def test_purchase_limit_starves_downstream() -> None:
    markets = [
        {"name": "gas_buy", "resource": "gas", "side": "buy", "price": 3.0, "max_volume": 8.0},
        {"name": "sales", "resource": "product", "side": "sell", "price": 20.0},
    ]
    res = simulate(compile_model(_model(markets=markets), 1))
    assert np.allclose(res.activity[0, 0], 4.0)


def test_project_capacity_capex_and_depreciation() -> None:
    projects = [
        {
            "name": "expand",
            "unit": "plant",
            "capacity": 10.0,
            "capex": 100.0,
            "capex_profile": [0.5, 0.5],
            "lead_time": 1,
            "life_years": 2,
            "salvage_value": 7.0,
        }
    ]
    model = _model(
        projects=projects, finance={"horizon": 4, "period": "year", "discount_rate": 0.1}
    )
    cm = compile_model(model, 1)
    res = simulate(cm, np.array([[0]]))
    assert np.allclose(res.activity[0, 0], [9.0, 18.0, 18.0, 18.0])
    assert np.allclose(res.accounts["capex"][0], [50.0, 50.0, 0.0, 0.0])
    assert np.allclose(res.accounts["depreciation"][0], [0.0, 50.0, 50.0, 0.0])
    assert np.allclose(res.accounts["salvage"][0], [0.0, 0.0, 0.0, 7.0])
    base = simulate(cm)
    extra = 9 * (20 - 6 - 1)
    assert np.allclose(res.fcf[0] - base.fcf[0], [-50.0, -50.0 + extra, extra, extra + 7.0])


def test_working_capital_is_built_and_released() -> None:
    finance = {"horizon": 3, "period": "year", "discount_rate": 0.1, "receivable_days": 73}
    res = simulate(compile_model(_model(finance=finance), 1))
    rev = 180.0
    tau, D = 73.0, 365.0
    r1 = rev / D * tau * (1 - np.exp(-D / tau))
    assert np.allclose(res.accounts["receivables"][0, 0], r1)
    assert np.allclose(res.accounts["delta_working_capital"][0].sum(), 0.0)


@pytest.mark.parametrize("tau_days", [10.0, 45.0, 200.0])
def test_lag_update_equals_solve_ivp(tau_days: float) -> None:
    """dR/dt = flow(t)/D - R/tau with piecewise-constant flow, integrated by scipy."""
    rng = np.random.default_rng(1)
    flows = rng.uniform(-5.0, 100.0, size=12)
    D = 365.0 / 12
    exact = lag_balance(flows[:, None], np.array([tau_days]), D)[:, 0]
    level = 0.0
    for t, f in enumerate(flows):
        sol = solve_ivp(
            lambda _s, y, f=f: [f / D - y[0] / tau_days], (0.0, D), [level], rtol=1e-12, atol=1e-12
        )
        level = float(sol.y[0, -1])
        assert exact[t] == pytest.approx(level, rel=1e-8, abs=1e-9)


def test_stock_update_equals_solve_ivp() -> None:
    """dS/dt = inflow - outflow, flows constant within each period."""
    markets = [
        {"name": "gas_buy", "resource": "gas", "side": "buy", "price": 3.0},
        {"name": "sales", "resource": "product", "side": "sell", "price": 20.0, "max_volume": 7.0},
    ]
    storages = [{"name": "tank", "resource": "product", "capacity": 5.0, "initial": 1.0}]
    res = simulate(compile_model(_model(markets=markets, storages=storages), 1))
    net = res.production[0, 1] - res.sales[0, 1]  # per period (year)
    level = 1.0
    for t in range(3):
        sol = solve_ivp(lambda _s, y, n=net[t]: [n], (0.0, 1.0), [level], rtol=1e-12, atol=1e-12)
        level = float(sol.y[0, -1])
        assert res.stock[0, 1, t] == pytest.approx(level, abs=1e-9)


@st.composite
def random_models(draw: st.DrawFn) -> EnterpriseModel:
    n_res = draw(st.integers(2, 6))
    res = [f"r{i}" for i in range(n_res)]
    units = []
    for j in range(draw(st.integers(1, 5))):
        # Inputs from lower-numbered resources, outputs to higher ones: an acyclic flow.
        split = draw(st.integers(1, n_res - 1))
        ins = draw(st.lists(st.sampled_from(res[:split]), min_size=1, max_size=2, unique=True))
        outs = draw(st.lists(st.sampled_from(res[split:]), min_size=1, max_size=2, unique=True))
        amount = st.floats(0.1, 3.0)
        units.append(
            {
                "name": f"u{j}",
                "inputs": {r: draw(amount) for r in ins},
                "outputs": {r: draw(amount) for r in outs},
                "capacity": draw(st.floats(0.0, 50.0)),
                "availability": draw(st.floats(0.5, 1.0)),
                "min_load": draw(st.sampled_from([0.0, 0.0, 0.3, 0.7])),
            }
        )
    limit = st.one_of(st.none(), st.floats(0.0, 40.0))
    markets, storages = [], []
    for r in res:
        if draw(st.booleans()):
            markets.append(
                {
                    "name": f"buy_{r}",
                    "resource": r,
                    "side": "buy",
                    "price": 1.0,
                    "max_volume": draw(limit),
                }
            )
        if draw(st.booleans()):
            markets.append(
                {
                    "name": f"sell_{r}",
                    "resource": r,
                    "side": "sell",
                    "price": 2.0,
                    "max_volume": draw(limit),
                }
            )
        if draw(st.booleans()):
            cap = draw(st.floats(0.0, 30.0))
            storages.append(
                {
                    "name": f"st_{r}",
                    "resource": r,
                    "capacity": cap,
                    "initial": draw(st.floats(0.0, cap)),
                }
            )
    data = {
        "name": "random",
        "resources": [{"name": r} for r in res],
        "units": units,
        "markets": markets,
        "storages": storages,
        "finance": {"horizon": draw(st.integers(1, 8)), "period": "month", "discount_rate": 0.1},
    }
    try:
        return EnterpriseModel.model_validate(data)
    except ValueError:
        assume(False)
        raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(model=random_models(), seed=st.integers(0, 2**32 - 1))
def test_balances_close_on_random_models(model: EnterpriseModel, seed: int) -> None:
    rng = np.random.default_rng(seed)
    S = 5
    scalars = {f"units.{u.name}.capacity": rng.uniform(0, 60, S) for u in model.units}
    cm = compile_model(model, S, scalars=scalars)
    res = simulate(cm)
    resid = balance_residual(cm, res)
    scale = np.maximum.reduce(
        [res.production, res.consumption, res.purchases, res.sales, res.stock, np.ones_like(resid)]
    )
    assert np.all(np.abs(resid) <= 1e-9 * scale)
    assert np.all(res.stock >= -1e-9) and np.all(
        res.stock <= cm.storage_capacity[:, :, None] + 1e-9
    )
    assert np.all(res.volume <= cm.max_volume[:, :, None] * (1 + 1e-12) + 1e-12)
    cap = (cm.capacity * cm.availability)[:, :, None]
    assert np.all(res.activity <= cap * (1 + 1e-12) + 1e-12) and np.all(res.activity >= 0)
    running = res.activity > 1e-9
    floor = (cm.min_load * cm.capacity * cm.availability)[:, :, None]
    assert np.all(~running | (res.activity >= floor * (1 - 1e-9)))


def test_library_models_close_balances_with_and_without_projects() -> None:
    for name in ("methanol_ammonia", "steel_minimill"):
        model = load_model(name)
        cm = compile_model(model, 4)
        for builds in (None, np.zeros((4, len(model.projects)), dtype=np.int64)):
            res = simulate(cm, builds)
            assert np.abs(balance_residual(cm, res)).max() < 1e-9 * max(1.0, res.production.max())


def test_scenarios_are_independent_of_batch_composition() -> None:
    model = load_model("methanol_ammonia")
    prices = np.linspace(0.2, 0.45, 6)
    full = simulate(compile_model(model, 6, scalars={"markets.methanol_sales.price": prices}))
    one = simulate(compile_model(model, 1, scalars={"markets.methanol_sales.price": prices[3:4]}))
    assert np.array_equal(full.fcf[3], one.fcf[0])


def _joint(b_inputs: dict[str, float], markets: list[dict[str, Any]]) -> EnterpriseModel:
    """Unit a makes x and y 1:1 from feed; unit b turns b_inputs into z, which sells freely."""
    return EnterpriseModel.model_validate(
        {
            "name": "joint",
            "resources": [{"name": n} for n in ("feed", "x", "y", "z")],
            "units": [
                {
                    "name": "a",
                    "inputs": {"feed": 1.0},
                    "outputs": {"x": 1.0, "y": 1.0},
                    "capacity": 10.0,
                },
                {"name": "b", "inputs": b_inputs, "outputs": {"z": 1.0}, "capacity": 10.0},
            ],
            "markets": [
                {"name": "feed_buy", "resource": "feed", "side": "buy", "price": 1.0},
                {"name": "z_sell", "resource": "z", "side": "sell", "price": 3.0},
                *markets,
            ],
            "finance": {"horizon": 2, "period": "year", "discount_rate": 0.1},
        }
    )


def test_a_unit_cut_for_one_output_does_not_overfeed_consumers_of_another() -> None:
    """x sells at most 5, so a runs at 5 and b gets only 5 y."""
    x_sell = {"name": "x_sell", "resource": "x", "side": "sell", "price": 1.0, "max_volume": 5.0}
    cm = compile_model(_joint({"y": 1.0}, [x_sell]), 1)
    res = simulate(cm)
    assert np.allclose(res.activity[0, :, 0], [5.0, 5.0])
    assert np.abs(balance_residual(cm, res)).max() < 1e-12


@pytest.mark.parametrize("ratio", [2.0, 1.01])
def test_joint_products_consumed_in_another_ratio_settle(ratio: float) -> None:
    """b needs x and y 1:ratio and neither can be sold: the only balance is 0."""
    model = _joint({"x": 1.0, "y": ratio}, [])
    cm = compile_model(model, 1)
    res = simulate(cm)
    assert np.abs(balance_residual(cm, res)).max() < 1e-9
    assert np.all(res.activity <= 1e-9)
