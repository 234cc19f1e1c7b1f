"""Compile once, evaluate per scenario: the numbers equal Pyomo's own compilation of a rebuild."""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.library import load_model
from edt_compute.params import base_values
from solvers import (
    PlanningModel,
    SolverOptions,
    build_formulation,
    compile_pyomo,
    scenario_params,
)


def _scenarios(name: str) -> CompiledModel:
    model = load_model(name)
    rng = np.random.default_rng(7)
    paths = {
        "methanol_ammonia": [
            "markets.gas_supply.price",
            "units.reformer.capacity",
            "units.ammonia_synthesis.min_load",
            "units.methanol_synthesis.inputs.syngas",
            "projects.methanol_debottleneck.capex",
            "projects.methanol_debottleneck.life_years",
            "finance.tax_rate",
            "finance.receivable_days",
            "storages.methanol_tanks.initial",
        ],
        "steel_minimill": [
            "markets.rebar_sales.price",
            "markets.rebar_sales.min_volume",
            "units.eaf.availability",
            "projects.rolling_expansion.capacity",
            "finance.discount_rate",
        ],
    }[name]
    base = base_values(model)
    scalars = {p: base[p] * rng.uniform(0.6, 0.95, 2) for p in paths}
    return compile_model(model, 2, scalars=scalars)


@pytest.mark.parametrize("name", ["methanol_ammonia", "steel_minimill"])
def test_parametric_numbers_equal_pyomos_compilation_of_the_rebuilt_model(name: str) -> None:
    cm = _scenarios(name)
    pm = PlanningModel(cm.model, SolverOptions())
    for s in range(cm.S):
        nums = pm.numbers(cm, s)
        rebuilt = build_formulation(pm.structure, scenario_params(pm.structure, cm, s))
        info = LinearStandardFormCompiler().write(rebuilt, mixed_form=True, set_sense=None)
        col_of = {v.name: j for j, v in enumerate(rebuilt.component_data_objects(pyo.Var))}
        row_of = {
            c.name: i
            for i, c in enumerate(rebuilt.component_data_objects(pyo.Constraint, active=True))
        }
        cols = np.array([col_of[v.name] for v in info.columns])

        cost = np.zeros(pm.milp.n_col)
        cost[cols] = info.c.toarray()[0]
        np.testing.assert_allclose(nums.cost, cost, rtol=1e-12, atol=1e-15)
        assert nums.offset == pytest.approx(float(info.c_offset[0]), abs=1e-12)

        ours = np.zeros((pm.milp.n_row, pm.milp.n_col))
        for j in range(pm.milp.n_col):
            lo, hi = pm.milp.a_start[j], pm.milp.a_start[j + 1]
            ours[pm.milp.a_index[lo:hi], j] = nums.values[lo:hi]
        theirs = info.A.toarray()
        for r, (con, sense) in enumerate(info.rows):
            i = row_of[con.name]
            np.testing.assert_allclose(ours[i, cols], theirs[r], rtol=1e-12, atol=1e-15)
            bound = nums.row_upper[i] if sense >= 0 else nums.row_lower[i]
            assert bound == pytest.approx(info.rhs[r], rel=1e-12, abs=1e-12)
            if sense == 0:
                assert nums.row_lower[i] == pytest.approx(info.rhs[r], rel=1e-12, abs=1e-12)

        for v in rebuilt.component_data_objects(pyo.Var):
            j = col_of[v.name]
            lb, ub = v.bounds
            assert nums.col_lower[j] == (-np.inf if lb is None else pytest.approx(lb, abs=1e-15))
            assert nums.col_upper[j] == (np.inf if ub is None else pytest.approx(ub, abs=1e-15))


def test_compiled_columns_follow_the_variables_index_sets() -> None:
    model = load_model("methanol_ammonia")
    pm = PlanningModel(model, SolverOptions())
    cols = pm.milp.columns
    T = model.finance.horizon
    assert cols["x"].shape == (len(model.units), T)
    assert cols["build"].shape == (len(model.projects), T)
    assert cols["stock"].shape == (len(model.storages), T)
    everything = np.concatenate([c.ravel() for c in cols.values()])
    assert sorted(everything.tolist()) == list(range(pm.milp.n_col))
    assert pm.milp.integer[cols["on"]].all() and pm.milp.integer[cols["build"]].all()
    assert not pm.milp.integer[cols["x"]].any()


def test_polynomial_coefficients_and_domain_bounds() -> None:
    m = pyo.ConcreteModel()
    m.p = pyo.Param(range(2), mutable=True, initialize={0: 2.0, 1: 3.0})
    m.q = pyo.Param(mutable=True, initialize=0.5)
    m.x = pyo.Var(range(2), bounds=lambda m, i: (-m.q, m.p[i] * 4))
    m.b = pyo.Var(within=pyo.Binary, bounds=(0, m.q))
    m.c = pyo.Constraint(
        expr=m.p[0] * m.q * m.x[0] - (m.p[1] + 1) * m.x[1] / 2 + m.q <= m.p[0] ** 2
    )
    m.o = pyo.Objective(expr=m.p[1] * m.x[0] + 3 * m.b, sense=pyo.maximize)
    milp = compile_pyomo(m)
    nums = milp.evaluate({"p": np.array([5.0, 7.0]), "q": np.array(2.0)})
    np.testing.assert_allclose(nums.values, [10.0, -4.0])
    assert nums.row_upper[0] == pytest.approx(25.0 - 2.0)
    assert nums.row_lower[0] == -np.inf
    np.testing.assert_allclose(nums.cost, [7.0, 0.0, 3.0])
    np.testing.assert_allclose(nums.col_lower, [-2.0, -2.0, 0.0])
    # The binary's bound q = 2 is clipped to its domain {0, 1}.
    np.testing.assert_allclose(nums.col_upper, [20.0, 28.0, 1.0])
    assert milp.maximize
    with pytest.raises(ValueError, match="shape"):
        milp.evaluate({"p": np.array([5.0]), "q": np.array(2.0)})
