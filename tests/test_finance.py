"""Specification of edt_compute.finance: numpy-financial is the reference where it has an
answer; payback and the profitability index are checked against hand-solved cases."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import numpy_financial as npf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edt_compute import finance

TOL = 1e-9
PROPERTY = settings(max_examples=200, deadline=None)


def conventional_flows(rng: np.random.Generator, rows: int, periods: int) -> np.ndarray:
    """An outlay at t=0 followed by noisy non-negative returns: one sign change."""
    flows = rng.uniform(0.0, 40.0, size=(rows, periods))
    flows[:, 0] = -rng.uniform(50.0, 150.0, size=rows)
    return flows


def npf_rows(func: Callable[..., float], rate: float, rows: npt.ArrayLike) -> np.ndarray:
    """A numpy-financial function of (rate, flows) applied row by row."""
    return np.array([func(rate, row) for row in np.asarray(rows)])


def npf_irr(rows: np.ndarray) -> np.ndarray:
    out = []
    for row in rows:
        try:
            out.append(npf.irr(row))
        except np.linalg.LinAlgError:  # numpy-financial raises on NaN/inf rows
            out.append(np.nan)
    return np.array(out)


# --- npv ---------------------------------------------------------------------------------


def test_npv_matches_numpy_financial_with_a_shared_rate() -> None:
    rng = np.random.default_rng(1)
    flows = rng.normal(0.0, 100.0, size=(300, 12))
    expected = npf_rows(npf.npv, 0.07, flows)
    np.testing.assert_allclose(finance.npv(0.07, flows), expected, rtol=TOL, atol=TOL)


def test_npv_matches_numpy_financial_with_a_rate_per_row() -> None:
    rng = np.random.default_rng(2)
    flows = rng.normal(0.0, 100.0, size=(300, 12))
    rates = rng.uniform(-0.5, 1.0, size=300)
    expected = np.array([npf.npv(r, row) for r, row in zip(rates, flows, strict=True)])
    np.testing.assert_allclose(finance.npv(rates, flows), expected, rtol=TOL, atol=TOL)


def test_npv_hand_case() -> None:
    assert float(finance.npv(0.1, [-100.0, 55.0, 60.5])) == pytest.approx(0.0, abs=1e-12)


# --- irr ---------------------------------------------------------------------------------


def test_irr_matches_numpy_financial_on_conventional_flows() -> None:
    rng = np.random.default_rng(3)
    flows = conventional_flows(rng, 500, 20)
    np.testing.assert_allclose(finance.irr(flows), npf_irr(flows), rtol=TOL, atol=TOL)


def test_irr_matches_numpy_financial_on_conventional_flows_of_every_shape() -> None:
    rng = np.random.default_rng(4)
    flows = rng.uniform(1.0, 50.0, size=(400, 15))
    build = rng.integers(1, 5, size=400)  # several outlay periods before returns start
    flows[np.arange(15) < build[:, None]] *= -1.0
    flows[::7, :2] = 0.0  # leading zeros: a project that starts later
    flows[::5, -3:] = 0.0  # trailing zeros: a project that ends early
    flows[::3] *= -1.0  # loans: money received first, repaid later
    np.testing.assert_allclose(finance.irr(flows), npf_irr(flows), rtol=TOL, atol=TOL)


def test_irr_reproduces_numpy_financial_choice_with_several_sign_changes() -> None:
    rng = np.random.default_rng(5)
    flows = rng.normal(0.0, 1.0, size=(2000, 8))
    expected = npf_irr(flows)
    assert np.isnan(expected).any() and (~np.isnan(expected)).any()
    np.testing.assert_allclose(finance.irr(flows), expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    ("flows", "expected"),
    [  # numpy-financial's documented examples
        ([-100, 39, 59, 55, 20], 0.28095),
        ([-100, 0, 0, 74], -0.0955),
        ([-100, 100, 0, -7], -0.0833),
        ([-100, 100, 0, 7], 0.06206),
        ([-5, 10.5, 1, -8, 1], 0.0886),
    ],
)
def test_irr_hand_cases(flows: list[float], expected: float) -> None:
    assert round(float(finance.irr(flows)), 5) == expected


@pytest.mark.parametrize(
    "flows",
    [
        [0.0, 0.0, 0.0],
        [100.0, 10.0, 0.0],
        [-100.0, -10.0, 0.0],
        [-100.0],
        [np.nan, 10.0, 20.0],
        [-100.0, np.nan, 120.0],
        [-100.0, np.inf, 120.0],
        [np.nan, np.nan, np.nan],
    ],
)
def test_irr_is_nan_without_a_sign_change_or_with_non_finite_flows(flows: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(finance.irr(flows))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_every_metric_is_nan_for_a_row_with_a_non_finite_flow(bad: float) -> None:
    flows = np.array([[-100.0, bad, 120.0], [-100.0, 60.0, 60.0]])
    assert np.isnan(finance.npv(0.1, flows)[0]) and np.isfinite(finance.npv(0.1, flows)[1])
    metrics = finance.metrics(flows, 0.1, 1)
    assert all(np.isnan(values[0]) for values in metrics.values()), metrics


def test_irr_of_mixed_rows_across_blocks() -> None:
    # More rows than one internal block, mixing every kind of row, in an unlucky order.
    rng = np.random.default_rng(6)
    flows = conventional_flows(rng, 40_000, 10)
    flows[::11] = rng.normal(0.0, 1.0, size=flows[::11].shape)
    flows[::13] = 0.0
    flows[::17, 4] = np.nan
    flows[::19] = np.abs(flows[::19])
    result = finance.irr(flows)
    sample = np.r_[0:300, 16_300:16_500, 39_800:40_000]
    np.testing.assert_allclose(result[sample], npf_irr(flows[sample]), rtol=TOL, atol=TOL)
    assert np.isnan(result[::13]).all() and np.isnan(result[::17]).all()


# Flows within six orders of magnitude of each other: beyond that, rates close to -1 lose
# their digits in 1 + r, and numpy-financial's companion matrix loses the root.
AMOUNT = st.one_of(st.just(0.0), st.floats(1e-2, 1e4))


@PROPERTY
@given(
    outlay=st.floats(1.0, 1e4),
    returns=st.lists(AMOUNT, min_size=1, max_size=40),
)
def test_irr_zeroes_the_npv_of_conventional_flows(outlay: float, returns: list[float]) -> None:
    flows = np.array([-outlay, *returns])
    rate = finance.irr(flows)
    if not any(r > 0 for r in returns):
        assert np.isnan(rate)
        return
    assert rate > -1.0
    # The residual is judged against the size of the discounted terms that cancel.
    scale = float(np.abs(flows / (1.0 + rate) ** np.arange(flows.size)).sum())
    assert abs(float(finance.npv(rate, flows))) <= 1e-10 * scale
    assert float(rate) == pytest.approx(npf.irr(flows), rel=TOL, abs=TOL)


@PROPERTY
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=12))
def test_irr_never_raises(flows: list[float]) -> None:
    rate = finance.irr(flows)
    assert rate.shape == ()
    assert np.isnan(rate) or rate >= -1.0


# --- mirr --------------------------------------------------------------------------------


def test_mirr_matches_numpy_financial() -> None:
    rng = np.random.default_rng(7)
    flows = rng.normal(5.0, 50.0, size=(300, 10))
    flows[::10] = np.abs(flows[::10])  # no outflow: NaN for both
    expected = np.array([npf.mirr(row, 0.08, 0.12) for row in flows])
    assert np.isnan(expected[::10]).all()
    np.testing.assert_allclose(finance.mirr(flows, 0.08, 0.12), expected, rtol=TOL, atol=TOL)


def test_mirr_with_rates_per_row() -> None:
    rng = np.random.default_rng(8)
    flows = conventional_flows(rng, 50, 8)
    fin, rei = rng.uniform(0.0, 0.2, 50), rng.uniform(0.0, 0.2, 50)
    expected = [npf.mirr(row, f, r) for row, f, r in zip(flows, fin, rei, strict=True)]
    np.testing.assert_allclose(finance.mirr(flows, fin, rei), expected, rtol=TOL, atol=TOL)


# --- profitability index -----------------------------------------------------------------


def test_profitability_index_hand_case() -> None:
    # PV of inflows at 10%: 60/1.1 + 60/1.21 = 104.1322...; outlay 100.
    assert float(finance.profitability_index(0.1, [-100.0, 60.0, 60.0])) == pytest.approx(
        (60 / 1.1 + 60 / 1.21) / 100, rel=1e-14
    )
    # Outflows in later periods count as investment too: PV = 100 + 10/1.21.
    pi = finance.profitability_index(0.1, [-100.0, 130.0, -10.0])
    assert float(pi) == pytest.approx((130 / 1.1) / (100 + 10 / 1.21), rel=1e-14)


def test_profitability_index_is_one_plus_npv_over_invested_present_value() -> None:
    rng = np.random.default_rng(9)
    flows = rng.normal(5.0, 50.0, size=(200, 10))
    flows[:, 0] = -100.0
    invested = -finance.npv(0.1, np.minimum(flows, 0.0))
    expected = 1.0 + finance.npv(0.1, flows) / invested
    np.testing.assert_allclose(finance.profitability_index(0.1, flows), expected, rtol=1e-12)


def test_profitability_index_is_nan_without_investment() -> None:
    assert np.isnan(finance.profitability_index(0.1, [0.0, 10.0, 10.0]))
    assert np.isnan(finance.profitability_index(0.1, [-10.0, np.nan, 10.0]))


# --- payback -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        ([-100.0, 30.0, 40.0, 50.0], 2.6),  # C = -100, -70, -30, 20: 2 + 30/50
        ([-100.0, 50.0, 50.0], 2.0),  # recovered exactly at the end of period 2
        ([-100.0, 30.1, 69.9], 2.0),  # the same, despite rounding in the cumulative
        ([-100.0, 150.0, -100.0, 20.0, 100.0], 3.3),  # last crossing counts: 3 + 30/100
        ([0.0, -100.0, 50.0, 100.0], 2.5),  # late start: C = 0, -100, -50, 50
        ([10.0, -5.0, 1.0], 0.0),  # the cumulative is never negative
        ([0.0, 0.0, 0.0], 0.0),
        ([-100.0, 30.0, 40.0], np.nan),  # never recovered
        ([-100.0, np.nan, 200.0], np.nan),
    ],
)
def test_payback_hand_cases(flows: list[float], expected: float) -> None:
    np.testing.assert_allclose(finance.payback(flows), expected, rtol=1e-14)


def test_discounted_payback_hand_case() -> None:
    # Discounted at 10%: -100, 54.545..., 49.586...; 2 + (100 - 54.545...) / 49.586...
    expected = 1.0 + (100.0 - 60.0 / 1.1) / (60.0 / 1.21)
    assert float(finance.discounted_payback(0.1, [-100.0, 60.0, 60.0])) == pytest.approx(
        expected, rel=1e-14
    )
    assert np.isnan(finance.discounted_payback(0.25, [-100.0, 60.0, 60.0]))


@PROPERTY
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_payback_lies_within_the_horizon(flows: list[float]) -> None:
    value = float(finance.payback(flows))
    assert np.isnan(value) or 0.0 <= value <= len(flows) - 1


# --- rates -------------------------------------------------------------------------------


def test_period_rate_and_annualise_hand_cases() -> None:
    assert float(finance.period_rate(0.21, 2)) == pytest.approx(0.1, rel=1e-14)
    assert float(finance.annualise(0.1, 2)) == pytest.approx(0.21, rel=1e-14)
    assert float(finance.annualise(0.01, 12)) == pytest.approx(1.01**12 - 1, rel=1e-14)
    np.testing.assert_array_equal(
        np.isnan(finance.period_rate([np.nan, -2.0, -1.0, 0.0], 4)), [True, True, False, False]
    )


@PROPERTY
@given(st.floats(-0.99, 10.0), st.sampled_from([1, 2, 4, 12, 52, 365]))
def test_annualise_inverts_period_rate(rate: float, m: int) -> None:
    back = float(finance.annualise(finance.period_rate(rate, m), m))
    assert back == pytest.approx(rate, rel=1e-12, abs=1e-14)


# --- shapes and the metrics bundle -------------------------------------------------------


def test_one_row_and_many_rows_agree() -> None:
    rng = np.random.default_rng(10)
    flows = conventional_flows(rng, 6, 9)
    flows[1] = rng.normal(0.0, 30.0, 9)
    flows[2] = 0.0
    rates = np.linspace(0.0, 0.2, 6)
    per_row: dict[str, tuple[np.ndarray, ...]] = {
        "npv": tuple(finance.npv(r, row) for r, row in zip(rates, flows, strict=True)),
        "irr": tuple(finance.irr(row) for row in flows),
        "mirr": tuple(finance.mirr(row, r, r) for r, row in zip(rates, flows, strict=True)),
        "payback": tuple(finance.payback(row) for row in flows),
    }
    batched = {
        "npv": finance.npv(rates, flows),
        "irr": finance.irr(flows),
        "mirr": finance.mirr(flows, rates, rates),
        "payback": finance.payback(flows),
    }
    for name, singles in per_row.items():
        assert all(s.shape == () for s in singles), name
        np.testing.assert_allclose(np.array(singles), batched[name], rtol=1e-13, err_msg=name)


def test_a_rows_metrics_do_not_depend_on_the_rows_computed_with_it() -> None:
    # Scenario tables must be byte-identical whatever the chunk size: compare bit for bit.
    rng = np.random.default_rng(12)
    flows = conventional_flows(rng, 2000, 24)
    flows[::7] = rng.normal(0.0, 30.0, size=flows[::7].shape)
    flows[::11, :3] = 0.0
    rates = rng.uniform(0.0, 0.2, 2000)
    whole = finance.metrics(flows, rates, 4)
    cuts = [0, 1, 2, 3, 10, 500, 501, 1999, 2000]
    pieces = [finance.metrics(flows[a:b], rates[a:b], 4) for a, b in itertools.pairwise(cuts)]
    singles = [finance.metrics(flows[i], rates[i], 4) for i in range(0, 2000, 37)]
    for name, column in whole.items():
        np.testing.assert_array_equal(
            np.concatenate([p[name] for p in pieces]), column, err_msg=name
        )
        np.testing.assert_array_equal([s[name] for s in singles], column[::37], err_msg=name)


def test_leading_dimensions_are_kept() -> None:
    flows = np.tile([-100.0, 60.0, 60.0], (2, 3, 1))
    assert finance.irr(flows).shape == (2, 3)
    assert finance.metrics(flows, 0.1, 1)["npv"].shape == (2, 3)


def test_empty_period_axis_is_rejected() -> None:
    with pytest.raises(ValueError, match="period"):
        finance.npv(0.1, np.empty((3, 0)))


def test_metrics_keys_and_units() -> None:
    rng = np.random.default_rng(11)
    flows = conventional_flows(rng, 20, 12)  # monthly flows
    annual = np.full(20, 0.12)
    out = finance.metrics(flows, annual, 12)
    assert list(out) == ["npv", "irr", "mirr", "pi", "payback_years", "discounted_payback_years"]
    monthly = 1.12 ** (1 / 12) - 1
    np.testing.assert_allclose(out["npv"], npf_rows(npf.npv, monthly, flows), rtol=TOL)
    np.testing.assert_allclose(out["irr"], (1 + npf_irr(flows)) ** 12 - 1, rtol=TOL)
    expected_mirr = [(1 + npf.mirr(row, monthly, monthly)) ** 12 - 1 for row in flows]
    np.testing.assert_allclose(out["mirr"], expected_mirr, rtol=TOL)
    np.testing.assert_allclose(out["payback_years"], finance.payback(flows) / 12)
    np.testing.assert_allclose(
        out["discounted_payback_years"], finance.discounted_payback(monthly, flows) / 12
    )
    np.testing.assert_allclose(out["pi"], finance.profitability_index(monthly, flows))
