"""The planning MILP on small models whose optimum can be worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edt_compute.compiled import compile_model
from edt_compute.library import load_model
from solvers import PlanningModel, PlanResult, SolverOptions, SolveStatus

EXACT = SolverOptions(mip_gap=1e-9)


def _model(
    units: list[dict[str, Any]],
    markets: list[dict[str, Any]],
    resources: tuple[str, ...] = ("feed", "product"),
    horizon: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    finance = {
        "horizon": horizon,
        "period": "year",
        "discount_rate": 0.0,
        **extra.pop("finance", {}),
    }
    return {
        "name": "hand",
        "resources": [{"name": r} for r in resources],
        "units": units,
        "markets": markets,
        "finance": finance,
        **extra,
    }


def _solve(doc: dict[str, Any], builds: np.ndarray | None = None) -> PlanResult:
    model = load_model(doc)
    return PlanningModel(model, EXACT).solve(compile_model(model, 1), 0, builds)


PLANT = {"name": "plant", "inputs": {"feed": 2.0}, "outputs": {"product": 1.0}, "capacity": 10.0}


def test_unit_runs_at_available_capacity_when_the_margin_is_positive() -> None:
    unit = {**PLANT, "availability": 0.9, "variable_cost": 0.5, "fixed_cost": 1.0}
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {"name": "sell", "resource": "product", "side": "sell", "price": 4.0, "max_volume": 100},
    ]
    res = _solve(_model([unit], markets, horizon=2, finance={"discount_rate": 0.1}))
    # Margin 4 - 2*1 - 0.5 = 1.5 per unit at 9 units, less the fixed cost, per period.
    assert res.status is SolveStatus.OPTIMAL
    assert res.objective == pytest.approx(12.5 + 12.5 / 1.1, rel=1e-9)
    assert res.plan is not None
    np.testing.assert_allclose(res.plan.activity[0, 0], [9.0, 9.0])
    np.testing.assert_allclose(res.plan.volume[0], [[18.0, 18.0], [9.0, 9.0]])


def _project_model(tax_rate: float, earliest: int = 0) -> dict[str, Any]:
    line = {"name": "line", "inputs": {"feed": 1.0}, "outputs": {"product": 1.0}, "capacity": 0.0}
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {"name": "sell", "resource": "product", "side": "sell", "price": 1.6, "max_volume": 1000},
    ]
    project = {
        "name": "new_line",
        "unit": "line",
        "capacity": 100.0,
        "capex": 100.0,
        "lead_time": 1,
        "life_years": 2,
        "earliest_period": earliest,
    }
    finance = {"discount_rate": 0.1, "tax_rate": tax_rate}
    return _model([line], markets, horizon=3, projects=[project], finance=finance)


def test_project_is_built_when_its_npv_is_positive() -> None:
    res = _solve(_project_model(tax_rate=0.0))
    # Built at 0: -100 + 60/1.1 + 60/1.1^2 = 4.132...; later builds lose a year of margin.
    assert res.status is SolveStatus.OPTIMAL
    assert res.builds.tolist() == [0]
    assert res.objective == pytest.approx(-100 + 60 / 1.1 + 60 / 1.21, rel=1e-9)


def test_tax_net_of_depreciation_can_turn_a_project_down() -> None:
    # Depreciation 50 a year, so tax 0.25 * (60 - 50) = 2.5 a year: -100 + 57.5/1.1 + 57.5/1.21 < 0.
    assert -100 + 57.5 / 1.1 + 57.5 / 1.21 < 0
    res = _solve(_project_model(tax_rate=0.25))
    assert res.status is SolveStatus.OPTIMAL
    assert res.builds.tolist() == [-1]
    assert res.objective == pytest.approx(0.0, abs=1e-9)


def test_given_builds_are_kept_and_their_npv_reported() -> None:
    res = _solve(_project_model(tax_rate=0.25), builds=np.array([0]))
    assert res.builds.tolist() == [0]
    assert res.objective == pytest.approx(-100 + 57.5 / 1.1 + 57.5 / 1.21, rel=1e-9)


def test_build_window_is_respected() -> None:
    res = _solve(_project_model(tax_rate=0.0, earliest=1))
    # From period 1 only: -100/1.1 + 60/1.21 < 0, so the project is not built at all.
    assert res.builds.tolist() == [-1]
    assert res.objective == pytest.approx(0.0, abs=1e-9)


def _two_projects() -> dict[str, Any]:
    doc = _project_model(tax_rate=0.0)
    cheaper = {**doc["projects"][0], "name": "cheaper_line", "capex": 90.0}
    return {**doc, "projects": [*doc["projects"], cheaper]}


@pytest.mark.parametrize(
    ("free", "builds", "npv"),
    [
        (None, [0, 0], (-100 + 60 / 1.1 + 60 / 1.21) + (-90 + 60 / 1.1 + 60 / 1.21)),
        ([0], [0, -1], -100 + 60 / 1.1 + 60 / 1.21),
        ([1], [-1, 0], -90 + 60 / 1.1 + 60 / 1.21),
        ([], [-1, -1], 0.0),
    ],
)
def test_only_free_projects_may_be_built(
    free: list[int] | None, builds: list[int], npv: float
) -> None:
    model = load_model(_two_projects())
    res = PlanningModel(model, EXACT).solve(compile_model(model, 1), 0, free=free)
    assert res.builds.tolist() == builds
    assert res.objective == pytest.approx(npv, rel=1e-9, abs=1e-9)


def _min_load_model(min_load: float) -> dict[str, Any]:
    unit = {
        "name": "plant",
        "inputs": {"feed": 1.0},
        "outputs": {"product": 1.0},
        "capacity": 100.0,
        "min_load": min_load,
    }
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {"name": "sell", "resource": "product", "side": "sell", "price": 1.5, "max_volume": 30},
        {"name": "dump", "resource": "product", "side": "sell", "price": -0.2},
    ]
    return _model([unit], markets)


def test_unit_shuts_down_when_its_minimum_load_loses_money() -> None:
    # At the 50-unit minimum: 30 * 1.5 - 50 * 1 - 20 * 0.2 = -9 < 0, so off is best.
    res = _solve(_min_load_model(0.5))
    assert res.objective == pytest.approx(0.0, abs=1e-9)
    assert res.plan is not None
    assert res.plan.activity[0, 0, 0] == pytest.approx(0.0, abs=1e-9)


def test_unit_follows_demand_when_its_minimum_load_fits() -> None:
    res = _solve(_min_load_model(0.2))
    assert res.objective == pytest.approx(30 * 0.5, rel=1e-9)
    assert res.plan is not None
    assert res.plan.activity[0, 0, 0] == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("startup", "expected", "running"), [(2.0, 9.0, [1, 1, 1]), (0.5, 9.5, [1, 0, 1])]
)
def test_unit_idles_through_a_loss_only_when_restarting_costs_more(
    startup: float, expected: float, running: list[int]
) -> None:
    unit = {
        "name": "plant",
        "inputs": {"feed": 1.0},
        "outputs": {"product": 1.0},
        "capacity": 10.0,
        "min_load": 1.0,
        "startup_cost": startup,
    }
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {
            "name": "sell",
            "resource": "product",
            "side": "sell",
            "price": 1.5,
            "price_profile": [1.0, 0.6, 1.0],
        },
    ]
    # Margins at full load 5, -1, 5: staying on earns 9, stopping earns 10 - startup.
    res = _solve(_model([unit], markets, horizon=3))
    assert res.objective == pytest.approx(expected, rel=1e-9)
    assert res.plan is not None
    assert (res.plan.activity[0, 0] > 0).astype(int).tolist() == running


def test_storage_carries_product_to_a_period_with_room_to_sell() -> None:
    markets = [
        {
            "name": "buy",
            "resource": "product",
            "side": "buy",
            "price": 1.0,
            "price_profile": [1.0, 3.0],
            "max_volume": 10,
        },
        {"name": "sell", "resource": "product", "side": "sell", "price": 2.5, "max_volume": 5},
    ]
    storages = [{"name": "tank", "resource": "product", "capacity": 5, "holding_cost": 0.1}]
    res = _solve(_model([], markets, resources=("product",), horizon=2, storages=storages))
    # t0: buy 10, sell 5, store 5 (hold 0.5); t1: sell the 5 stored. 2 + 12.5.
    assert res.objective == pytest.approx(14.5, rel=1e-9)
    assert res.plan is not None
    np.testing.assert_allclose(res.plan.stock[0, 0], [5.0, 0.0], atol=1e-9)


def _short_model(penalty: float) -> dict[str, Any]:
    unit = {**PLANT, "inputs": {"feed": 1.0}}
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {
            "name": "sell",
            "resource": "product",
            "side": "sell",
            "price": 2.0,
            "max_volume": 20,
            "min_volume": 15,
            "shortfall_penalty": penalty,
        },
    ]
    return _model([unit], markets)


def test_contracted_minimum_is_soft_with_a_penalty() -> None:
    res = _solve(_short_model(0.5))
    assert res.status is SolveStatus.OPTIMAL
    assert res.objective == pytest.approx(10 * 1.0 - 5 * 0.5, rel=1e-9)


def test_contracted_minimum_without_penalty_is_hard_and_can_be_infeasible() -> None:
    res = _solve(_short_model(0.0))
    assert res.status is SolveStatus.INFEASIBLE
    assert res.plan is None
    assert np.isnan(res.objective)


def test_unlimited_arbitrage_is_reported_unbounded() -> None:
    markets = [
        {"name": "buy", "resource": "product", "side": "buy", "price": 1.0},
        {"name": "sell", "resource": "product", "side": "sell", "price": 2.0},
    ]
    unit = {
        "name": "plant",
        "inputs": {"feed": 1.0},
        "outputs": {"product": 1.0},
        "capacity": 5.0,
        "min_load": 0.5,
    }
    feed = {"name": "feed_buy", "resource": "feed", "side": "buy", "price": 1.0}
    res = _solve(_model([unit], [*markets, feed]))
    assert res.status is SolveStatus.UNBOUNDED
    assert res.plan is None


def test_bundled_model_builds_its_debottleneck_at_base_prices() -> None:
    model = load_model("methanol_ammonia")
    res = PlanningModel(model, SolverOptions()).solve(compile_model(model, 1), 0)
    assert res.status is SolveStatus.OPTIMAL
    assert res.builds.tolist() == [0]
    assert res.mip_gap <= 1e-4
    assert res.bound >= res.objective - 1e-6 * abs(res.objective)
