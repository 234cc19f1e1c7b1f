"""Scenario sets: spec parsing, the order and content of each kind, and determinism per id.

The determinism tests are the contract the cluster relies on: a scenario's inputs depend only
on (seed, scenario id) and the spec, so any chunking of the ids, in any order, on any worker,
gives bit-identical values.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from edt_compute.model import EnterpriseModel
from edt_compute.params import base_values
from edt_compute.scenarios import (
    ScenarioInputs,
    ScenarioSpec,
    check_spec,
    generate,
    scenario_count,
)

SPEC: TypeAdapter[Any] = TypeAdapter(ScenarioSpec)
CAP = "units.reformer.capacity"
VC = "units.reformer.variable_cost"
CAPEX = "projects.new_line.capex"
DR = "finance.discount_rate"
SALES = "markets.methanol_sales.price"
GAS = "markets.gas_purchase.price"
BASE = {CAP: 100.0, VC: 12.0, CAPEX: 5.0e6, DR: 0.08, SALES: 400.0, GAS: 30.0}
HORIZON, PPY = 12, 12


def spec(data: dict[str, Any]) -> Any:
    return SPEC.validate_python(data)


def run(s: Any, ids: Any, seed: int = 42, base: dict[str, float] = BASE) -> ScenarioInputs:
    return generate(s, base, horizon=HORIZON, periods_per_year=PPY, seed=seed, ids=np.asarray(ids))


# --- list -------------------------------------------------------------------------------------

LIST = {
    "kind": "list",
    "scenarios": [
        {"name": "base", "overrides": {}},
        {"name": "high_price", "overrides": {SALES: 480.0}},
        {"name": "cheap_plant", "overrides": {CAPEX: 4.0e6, SALES: 380.0}},
    ],
}


def test_list_keeps_order_and_fills_base_for_unmentioned_paths() -> None:
    s = spec(LIST)
    assert scenario_count(s) == 3
    out = run(s, [0, 1, 2])
    assert list(out.columns["scenario_name"]) == ["base", "high_price", "cheap_plant"]
    assert out.scalars[SALES].tolist() == [400.0, 480.0, 380.0]
    assert out.scalars[CAPEX].tolist() == [5.0e6, 5.0e6, 4.0e6]
    assert set(out.scalars) == {SALES, CAPEX}
    assert out.series == {}
    assert out.scenario_ids.dtype == np.int64


def test_list_refuses_duplicate_names() -> None:
    bad = {"kind": "list", "scenarios": [{"name": "a"}, {"name": "a"}]}
    with pytest.raises(ValidationError, match="duplicate names"):
        spec(bad)


# --- grid -------------------------------------------------------------------------------------


def test_grid_is_full_factorial_in_row_major_order() -> None:
    grid = {CAP: [90.0, 100.0, 110.0], SALES: [350.0, 450.0], DR: [0.06, 0.08, 0.10, 0.12]}
    s = spec({"kind": "grid", "parameters": grid})
    assert scenario_count(s) == 3 * 2 * 4
    out = run(s, np.arange(24))
    expected = list(itertools.product(*grid.values()))  # first parameter slowest
    got = list(zip(out.scalars[CAP], out.scalars[SALES], out.scalars[DR], strict=True))
    assert got == expected
    assert list(out.columns) == [CAP, SALES, DR]


def test_grid_multiplier_multiplies_the_base_value() -> None:
    s = spec({"kind": "grid", "mode": "multiplier", "parameters": {SALES: [0.9, 1.1], GAS: [2.0]}})
    out = run(s, [0, 1])
    assert out.scalars[SALES].tolist() == pytest.approx([360.0, 440.0])
    assert out.scalars[GAS].tolist() == [60.0, 60.0]


def test_grid_refuses_a_parameter_without_values() -> None:
    with pytest.raises(ValidationError, match="no values"):
        spec({"kind": "grid", "parameters": {CAP: []}})


# --- one at a time ----------------------------------------------------------------------------

OAT = {
    "kind": "one_at_a_time",
    "parameters": {SALES: {"low": 320.0, "high": 480.0}, CAPEX: {"low": 4.0e6, "high": 6.5e6}},
}


def test_one_at_a_time_is_base_then_low_high_per_parameter() -> None:
    s = spec(OAT)
    assert scenario_count(s) == 5
    out = run(s, np.arange(5))
    assert list(out.columns["oat_parameter"]) == ["", SALES, SALES, CAPEX, CAPEX]
    assert list(out.columns["oat_level"]) == ["base", "low", "high", "low", "high"]
    assert out.scalars[SALES].tolist() == [400.0, 320.0, 480.0, 400.0, 400.0]
    assert out.scalars[CAPEX].tolist() == [5.0e6, 5.0e6, 5.0e6, 4.0e6, 6.5e6]


def test_one_at_a_time_multiplier_and_any_subset_of_ids() -> None:
    s = spec({**OAT, "mode": "multiplier", "parameters": {SALES: {"low": 0.8, "high": 1.25}}})
    out = run(s, [2, 0])
    assert out.scalars[SALES].tolist() == [500.0, 400.0]
    assert list(out.columns["oat_level"]) == ["high", "base"]


# --- monte carlo: determinism ---------------------------------------------------------------


def mc_spec(method: str, samples: int = 203) -> Any:
    return spec(
        {
            "kind": "monte_carlo",
            "samples": samples,
            "method": method,
            "parameters": {
                # Truncated into the capacity's domain [0, inf), as validation requires.
                CAP: {
                    "dist": "normal",
                    "mean": 1.0,
                    "std": 0.05,
                    "mode": "multiplier",
                    "truncate": [0.0, None],
                },
                VC: {"dist": "pert", "low": 10.0, "most_likely": 12.0, "high": 18.0},
                CAPEX: {"dist": "lognormal", "mean": 5.0e6, "std": 1.0e6, "truncate": [None, 8e6]},
                DR: {
                    "dist": "discrete",
                    "values": [0.06, 0.08, 0.1],
                    "probabilities": [0.25, 0.5, 0.25],
                },
                GAS: {"dist": "triangular", "low": 20.0, "most_likely": 30.0, "high": 45.0},
            },
            "correlation": {"parameters": [CAP, GAS], "matrix": [[1.0, -0.5], [-0.5, 1.0]]},
            "processes": {SALES: {"process": "ou", "kappa": 0.5, "sigma": 0.3, "log": True}},
        }
    )


def assert_same_rows(a: ScenarioInputs, b: ScenarioInputs, rows: np.ndarray) -> None:
    """b's rows equal a's `rows`, bit for bit, in every output."""
    np.testing.assert_array_equal(a.scenario_ids[rows], b.scenario_ids)
    for name in ("scalars", "series", "columns"):
        da, db = getattr(a, name), getattr(b, name)
        assert list(da) == list(db)
        for key in da:
            np.testing.assert_array_equal(da[key][rows], db[key], err_msg=f"{name}[{key}]")


def concat(parts: list[ScenarioInputs]) -> ScenarioInputs:
    first = parts[0]
    return ScenarioInputs(
        np.concatenate([p.scenario_ids for p in parts]),
        {k: np.concatenate([p.scalars[k] for p in parts]) for k in first.scalars},
        {k: np.concatenate([p.series[k] for p in parts]) for k in first.series},
        {k: np.concatenate([p.columns[k] for p in parts]) for k in first.columns},
    )


WHOLE = {m: run(mc_spec(m), np.arange(203)) for m in ("mc", "lhs", "sobol")}


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_chunking_in_any_order_gives_identical_inputs(method: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, 202), max_size=8)))
    chunks = [np.arange(a, b) for a, b in itertools.pairwise([0, *cuts, 203])]
    order = data.draw(st.permutations(range(len(chunks))))
    parts = [run(mc_spec(method), chunks[i]) for i in order]
    rows = np.concatenate([chunks[i] for i in order])
    assert_same_rows(WHOLE[method], concat(parts), rows)


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_non_contiguous_shuffled_ids_give_identical_inputs(
    method: str, data: st.DataObject
) -> None:
    ids = np.array(data.draw(st.lists(st.integers(0, 202), min_size=1, max_size=40, unique=True)))
    assert_same_rows(WHOLE[method], run(mc_spec(method), ids), ids)


def test_each_scenario_alone_equals_its_row_of_the_whole_set() -> None:
    for method, whole in WHOLE.items():
        for i in (0, 1, 77, 202):
            assert_same_rows(whole, run(mc_spec(method), [i]), np.array([i]))


def test_the_seed_changes_the_draws_and_only_the_seed_does() -> None:
    s = mc_spec("mc")
    a, b = run(s, np.arange(50), seed=1), run(s, np.arange(50), seed=2)
    assert not np.array_equal(a.scalars[CAP], b.scalars[CAP])
    assert_same_rows(a, run(s, np.arange(50), seed=1), np.arange(50))


def test_plain_mc_draws_do_not_depend_on_the_sample_count() -> None:
    # Streams are keyed by id alone, so growing a study keeps the scenarios already run.
    small, large = run(mc_spec("mc", 60), np.arange(60)), run(mc_spec("mc", 203), np.arange(60))
    assert_same_rows(small, large, np.arange(60))


def test_mc_outputs_have_the_documented_shapes_and_columns() -> None:
    out = WHOLE["mc"]
    assert out.series[SALES].shape == (203, HORIZON)
    assert np.all(out.series[SALES][:, 0] == 400.0)
    assert list(out.columns) == [CAP, VC, CAPEX, DR, GAS, f"{SALES}.mean"]
    np.testing.assert_allclose(out.columns[f"{SALES}.mean"], out.series[SALES].mean(axis=1))
    assert all(v.dtype == np.float64 for v in out.scalars.values())


# --- monte carlo: design properties ---------------------------------------------------------


def uniform_design(method: str, n: int) -> np.ndarray:
    s = spec(
        {
            "kind": "monte_carlo",
            "samples": n,
            "method": method,
            "parameters": {p: {"dist": "uniform", "low": 0.0, "high": 1.0} for p in (CAP, VC, DR)},
        }
    )
    out = run(s, np.arange(n))
    return np.column_stack([out.scalars[p] for p in (CAP, VC, DR)])


@pytest.mark.parametrize(("method", "n"), [("lhs", 1000), ("sobol", 1024)])
def test_each_dimension_has_one_point_per_stratum(method: str, n: int) -> None:
    u = uniform_design(method, n)
    for j in range(u.shape[1]):
        assert sorted(np.floor(u[:, j] * n).astype(int)) == list(range(n))


# --- correlation ------------------------------------------------------------------------------

TARGET = [[1.0, 0.7, -0.4], [0.7, 1.0, 0.2], [-0.4, 0.2, 1.0]]


@pytest.mark.parametrize(("method", "n"), [("mc", 20_000), ("lhs", 20_000), ("sobol", 16_384)])
def test_achieved_spearman_correlation_matches_target(method: str, n: int) -> None:
    s = spec(
        {
            "kind": "monte_carlo",
            "samples": n,
            "method": method,
            "parameters": {
                CAP: {"dist": "normal", "mean": 100.0, "std": 10.0},
                SALES: {"dist": "lognormal", "mean": 400.0, "std": 80.0},
                CAPEX: {"dist": "pert", "low": 4e6, "most_likely": 5e6, "high": 8e6},
                GAS: {"dist": "uniform", "low": 20.0, "high": 40.0},
            },
            "correlation": {"parameters": [CAP, SALES, CAPEX], "matrix": TARGET},
        }
    )
    out = run(s, np.arange(n))
    rho = stats.spearmanr(np.column_stack([out.scalars[p] for p in (CAP, SALES, CAPEX)])).statistic
    np.testing.assert_allclose(rho, TARGET, atol=0.03)
    # The uncorrelated parameter stays uncorrelated, and marginals are untouched by the copula.
    assert abs(stats.spearmanr(out.scalars[CAP], out.scalars[GAS]).statistic) < 0.03
    assert stats.kstest(out.scalars[CAP], stats.norm(100.0, 10.0).cdf).pvalue > 1e-3


def test_perfect_rank_correlation_is_accepted() -> None:
    s = spec(
        {
            "kind": "monte_carlo",
            "samples": 500,
            "parameters": {
                CAP: {"dist": "normal", "mean": 100.0, "std": 10.0},
                GAS: {"dist": "uniform", "low": 20.0, "high": 40.0},
            },
            "correlation": {"parameters": [CAP, GAS], "matrix": [[1.0, 1.0], [1.0, 1.0]]},
        }
    )
    out = run(s, np.arange(500))
    assert stats.spearmanr(out.scalars[CAP], out.scalars[GAS]).statistic > 0.999


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]], "positive semi-definite"),
        ([[1.0, 0.5, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]], "not symmetric"),
        ([[1.0, 0.5, 0.0], [0.5, 0.9, 0.0], [0.0, 0.0, 1.0]], "diagonal"),
        ([[1.0, 1.5, 0.0], [1.5, 1.0, 0.0], [0.0, 0.0, 1.0]], r"\[-1, 1\]"),
        ([[1.0, 0.5], [0.5, 1.0]], "3 x 3"),
    ],
)
def test_invalid_correlation_matrix_is_refused_naming_it(
    matrix: list[list[float]], message: str
) -> None:
    data = {
        "kind": "monte_carlo",
        "samples": 10,
        "parameters": {p: {"dist": "uniform", "low": 0.0, "high": 1.0} for p in (CAP, VC, DR)},
        "correlation": {"parameters": [CAP, VC, DR], "matrix": matrix},
    }
    with pytest.raises(ValidationError, match=r"correlation\.matrix") as err:
        spec(data)
    assert err.match(message)


def test_correlation_of_an_unsampled_parameter_is_refused() -> None:
    data = {
        "kind": "monte_carlo",
        "samples": 10,
        "parameters": {CAP: {"dist": "uniform", "low": 0.0, "high": 1.0}},
        "correlation": {"parameters": [CAP, VC], "matrix": [[1.0, 0.0], [0.0, 1.0]]},
    }
    with pytest.raises(
        ValidationError, match=r"correlation.parameters.*units.reformer.variable_cost"
    ):
        spec(data)


# --- spec checks against a model ----------------------------------------------------------


def test_unknown_path_is_refused_naming_it() -> None:
    s = spec({"kind": "grid", "parameters": {"units.reformr.capacity": [1.0], CAP: [2.0]}})
    with pytest.raises(
        ValueError, match=r"scenarios\.parameters\.units\.reformr\.capacity: unknown"
    ):
        check_spec(s, BASE)
    with pytest.raises(ValueError, match=r"units\.reformr\.capacity"):
        run(s, [0])


def test_unknown_override_in_a_list_names_the_scenario() -> None:
    s = spec({"kind": "list", "scenarios": [{"name": "a", "overrides": {"finance.tax": 0.3}}]})
    with pytest.raises(ValueError, match=r"scenarios\.scenarios\[0\]\.overrides\.finance\.tax"):
        check_spec(s, BASE)


def test_process_on_a_scalar_only_path_is_refused() -> None:
    s = spec(
        {"kind": "monte_carlo", "samples": 4, "processes": {CAP: {"process": "gbm", "sigma": 0.1}}}
    )
    with pytest.raises(
        ValueError, match=r"scenarios\.processes\.units\.reformer\.capacity: not a per-period"
    ):
        check_spec(s, BASE)


def test_log_ou_from_a_non_positive_price_is_refused() -> None:
    s = spec(
        {
            "kind": "monte_carlo",
            "samples": 4,
            "processes": {SALES: {"process": "ou", "kappa": 1.0, "sigma": 0.1, "log": True}},
        }
    )
    with pytest.raises(
        ValueError, match=r"scenarios\.processes\.markets\.methanol_sales\.price: log OU"
    ):
        check_spec(s, {**BASE, SALES: -5.0})


def test_sobol_warns_when_samples_is_not_a_power_of_two() -> None:
    with pytest.warns(UserWarning, match="power of 2"):
        check_spec(mc_spec("sobol", 1000), BASE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_spec(mc_spec("sobol", 1024), BASE)


def test_paths_of_a_real_model_are_accepted() -> None:
    model = EnterpriseModel.model_validate(
        {
            "name": "tiny",
            "resources": [{"name": "gas"}, {"name": "methanol"}],
            "units": [
                {
                    "name": "reformer",
                    "inputs": {"gas": 1.5},
                    "outputs": {"methanol": 1.0},
                    "capacity": 100,
                }
            ],
            "markets": [
                {"name": "gas_purchase", "resource": "gas", "side": "buy", "price": 30},
                {"name": "methanol_sales", "resource": "methanol", "side": "sell", "price": 400},
            ],
            "finance": {"horizon": 12, "period": "month", "discount_rate": 0.08},
        }
    )
    base = base_values(model)
    s = spec(
        {
            "kind": "monte_carlo",
            "samples": 8,
            "parameters": {CAP: {"dist": "uniform", "low": 80.0, "high": 120.0}},
            "processes": {SALES: {"process": "gbm", "mu": 0.02, "sigma": 0.2}},
        }
    )
    check_spec(s, base)
    out = generate(s, base, horizon=12, periods_per_year=12, seed=3, ids=np.arange(8))
    assert out.series[SALES].shape == (8, 12)


# --- parsing and arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "grid", "parameters": {CAP: [1.0]}, "mdoe": "absolute"}, "mdoe"),
        ({"kind": "montecarlo", "samples": 3}, "kind"),
        (
            {
                "kind": "monte_carlo",
                "samples": 0,
                "parameters": {CAP: {"dist": "normal", "mean": 0, "std": 1}},
            },
            "samples",
        ),
        ({"kind": "monte_carlo", "samples": 5}, "at least one"),
        ({"kind": "monte_carlo", "samples": 5, "method": "halton", "parameters": {}}, "method"),
        ({"kind": "one_at_a_time", "parameters": {CAP: {"low": 1.0}}}, "high"),
    ],
)
def test_invalid_spec_is_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(data)


def test_out_of_range_ids_are_refused() -> None:
    s = spec(OAT)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        run(s, [0, 5])
    with pytest.raises(ValueError, match="ids"):
        run(s, [-1])
    with pytest.raises(ValueError, match="integer"):
        run(s, [0.5])


def test_empty_ids_give_empty_inputs() -> None:
    out = run(mc_spec("sobol"), np.array([], dtype=np.int64))
    assert out.scalars[CAP].shape == (0,)
    assert out.series[SALES].shape == (0, HORIZON)
