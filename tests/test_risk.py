"""Specification of edt_compute.risk: small hand-checked sets, numpy and scipy as references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from edt_compute import risk

# Ten NPVs, sorted for reading: two are negative.
NPVS = np.array([-30.0, -10.0, 5.0, 10.0, 20.0, 25.0, 40.0, 50.0, 70.0, 100.0])


def test_moments_and_quantiles_of_a_small_set() -> None:
    s = risk.summarize(NPVS)
    assert s["count"] == 10 and s["missing"] == 0
    assert s["mean"] == pytest.approx(28.0)
    assert s["std"] == pytest.approx(np.std(NPVS, ddof=1))
    assert s["stderr"] == pytest.approx(np.std(NPVS, ddof=1) / math.sqrt(10))
    for key, q in {"p5": 0.05, "p10": 0.1, "p50": 0.5, "p90": 0.9, "p95": 0.95}.items():
        assert s[key] == pytest.approx(float(np.quantile(NPVS, q))), key
    # Linear interpolation between order statistics, by hand: position q * (n - 1).
    assert s["p5"] == pytest.approx(-30.0 + 0.45 * 20.0)  # -21
    assert s["p50"] == pytest.approx(22.5)


def test_probability_of_a_negative_value() -> None:
    assert risk.summarize(NPVS)["prob_negative"] == pytest.approx(0.2)
    # Zero is not a loss.
    assert risk.summarize(np.array([0.0, 1.0, -1.0, 2.0]))["prob_negative"] == 0.25


def test_var_and_cvar_are_the_lower_tail_in_value_units() -> None:
    s = risk.summarize(NPVS)
    assert s["var95"] == pytest.approx(-21.0)  # = p5
    assert s["cvar95"] == pytest.approx(-30.0)  # only -30 lies at or below -21
    s90 = risk.summarize(NPVS, confidence=0.9)
    assert s90["var90"] == pytest.approx(-12.0)  # position 0.9: -30 + 0.9 * 20
    assert s90["cvar90"] == pytest.approx(-30.0)
    s80 = risk.summarize(NPVS, confidence=0.8)
    assert s80["var80"] == pytest.approx(2.0)  # position 1.8: -10 + 0.8 * 15
    assert s80["cvar80"] == pytest.approx(-20.0)  # mean of -30 and -10
    assert "var95" not in s80


def test_cvar_of_a_large_sample_matches_the_tail_mean() -> None:
    values = np.random.default_rng(1).normal(10.0, 50.0, 100_000)
    s = risk.summarize(values)
    q = np.quantile(values, 0.05)
    assert s["var95"] == pytest.approx(q)
    assert s["cvar95"] == pytest.approx(values[values <= q].mean())
    assert s["cvar95"] < s["var95"] < s["p50"]


def test_expected_integral_effect_weights_the_extremes() -> None:
    assert risk.summarize(NPVS)["expected_integral_effect"] == pytest.approx(0.3 * 100 - 0.7 * 30)
    s = risk.summarize(NPVS, lam=0.5)
    assert s["expected_integral_effect"] == pytest.approx(35.0)
    assert risk.summarize(NPVS, lam=1.0)["expected_integral_effect"] == 100.0


def test_non_finite_values_are_missing_not_counted() -> None:
    with_gaps = np.concatenate([NPVS, [np.nan, np.nan, np.inf]])
    s = risk.summarize(with_gaps)
    assert s["count"] == 10 and s["missing"] == 3
    clean = risk.summarize(NPVS)
    assert {k: v for k, v in s.items() if k != "missing"} == {
        k: v for k, v in clean.items() if k != "missing"
    }


def test_degenerate_sets_give_none_not_nan() -> None:
    empty = risk.summarize(np.array([np.nan, np.nan]))
    assert empty["count"] == 0 and empty["missing"] == 2
    assert all(empty[k] is None for k in ("mean", "std", "p50", "var95", "cvar95"))
    single = risk.summarize(np.array([5.0]))
    assert single["mean"] == 5.0 and single["p95"] == 5.0
    assert single["std"] is None and single["stderr"] is None


def test_summary_is_strict_json() -> None:
    values = np.array([1.0, np.nan, 3.0])
    s = risk.summarize(values, inputs={"price": np.array([1.0, 2.0, 2.0])})
    json.dumps(s, allow_nan=False)
    assert all(type(v) in (int, float, dict) or v is None for v in s.values())


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    price, cost = rng.normal(size=500), rng.normal(size=500)
    npv = 3.0 * price - cost + rng.normal(scale=0.5, size=500)
    s = risk.summarize(npv, inputs={"price": price, "cost": cost})
    assert s["spearman"]["price"] == pytest.approx(stats.spearmanr(price, npv).statistic)
    assert s["spearman"]["cost"] == pytest.approx(stats.spearmanr(cost, npv).statistic)
    assert s["spearman"]["price"] > 0.8 and s["spearman"]["cost"] < 0


def test_spearman_skips_scenarios_without_a_value() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = x**3 + rng.normal(scale=0.1, size=200)
    y[::10] = np.nan  # failed scenarios
    x[5] = np.nan  # an input that could not be sampled
    keep = np.isfinite(x) & np.isfinite(y)
    s = risk.summarize(y, inputs={"x": x})
    assert s["spearman"]["x"] == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)


def test_spearman_of_a_constant_input_is_none() -> None:
    s = risk.summarize(NPVS, inputs={"fixed": np.full(10, 7.0), "few": np.r_[1.0, [np.nan] * 9]})
    assert s["spearman"] == {"fixed": None, "few": None}


def test_input_columns_must_match_the_values() -> None:
    with pytest.raises(ValueError, match="shape"):
        risk.summarize(NPVS, inputs={"short": np.ones(3)})


@pytest.mark.parametrize(("kwargs"), [{"confidence": 1.0}, {"confidence": 0.0}, {"lam": 1.5}])
def test_out_of_range_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        risk.summarize(NPVS, **kwargs)  # type: ignore[arg-type]


def test_summarize_metrics_covers_the_metrics_present() -> None:
    table = {"npv": NPVS, "irr": NPVS / 100.0, "scenario_id": np.arange(10.0)}
    out = risk.summarize_metrics(table)
    assert list(out) == ["npv", "irr"]
    assert out["npv"] == risk.summarize(NPVS)
    assert out["irr"]["p50"] == pytest.approx(0.225)
    only = risk.summarize_metrics(table, ["irr"], inputs={"id": table["scenario_id"]})
    assert list(only) == ["irr"] and only["irr"]["spearman"]["id"] == pytest.approx(1.0)


def test_summarize_metrics_says_how_many_scenarios_lack_a_metric_that_may_not_exist() -> None:
    irr = np.array([0.1, np.nan, 0.2, np.nan, 0.3])
    table = {"npv": np.arange(5.0), "irr": irr, "pi": irr}
    out = risk.summarize_metrics(table, inputs={"x": np.arange(5.0)}, sensitivity_of=["npv"])
    assert out["irr"]["share_undefined"] == pytest.approx(0.4)
    assert out["irr"]["count"] == 3 and out["irr"]["p50"] == pytest.approx(0.2)
    # NPV and PI always exist for a scenario with a result: no share to report.
    assert "share_undefined" not in out["npv"] and "share_undefined" not in out["pi"]
    assert out["npv"]["spearman"] == {"x": pytest.approx(1.0)} and out["irr"]["spearman"] == {}
    empty = risk.summarize_metrics({"irr": np.array([])})
    assert empty["irr"]["share_undefined"] is None


def test_json_ready_turns_missing_figures_into_null() -> None:
    doc = {"a": [np.float64(np.nan), 1.5, np.int64(3)], "b": {"c": -np.inf}, "d": "x"}
    assert json.dumps(risk.json_ready(doc)) == '{"a": [null, 1.5, 3], "b": {"c": null}, "d": "x"}'


def test_tornado_orders_bars_by_swing() -> None:
    bars = risk.tornado(
        100.0,
        low={"price": 60.0, "capex": 120.0, "fx": 95.0, "broken": math.nan},
        high={"price": 150.0, "capex": 85.0, "fx": 104.0, "broken": 110.0},
    )
    assert [b["parameter"] for b in bars] == ["price", "capex", "fx", "broken"]
    assert bars[0] == {
        "parameter": "price",
        "low": 60.0,
        "high": 150.0,
        "swing": 90.0,
        "low_delta": -40.0,
        "high_delta": 50.0,
    }
    assert bars[1]["swing"] == 35.0  # |85 - 120|: a cost's high setting lowers the value
    assert bars[3]["swing"] is None and bars[3]["low"] is None
    json.dumps(bars, allow_nan=False)


def test_tornado_needs_both_ends_of_every_parameter() -> None:
    with pytest.raises(ValueError, match="capex"):
        risk.tornado(0.0, {"price": 1.0, "capex": 2.0}, {"price": 3.0})
