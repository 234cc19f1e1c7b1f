"""Marginal distributions and price processes match their scipy.stats / closed-form references.

Samples come through `generate`, the path a job takes, with fixed seeds, so every statistical
test here is deterministic; the p-value threshold is loose (1e-3) so a correct sampler passes
with a wide margin and a wrong one (wrong parameterisation, wrong scale) fails by far.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from edt_compute.distributions import Distribution
from edt_compute.processes import PriceProcess
from edt_compute.scenarios import ScenarioSpec, generate

SPEC: TypeAdapter[Any] = TypeAdapter(ScenarioSpec)
DIST: TypeAdapter[Any] = TypeAdapter(Distribution)
PROCESS: TypeAdapter[Any] = TypeAdapter(PriceProcess)
N = 20_000
P_MIN = 1e-3
PATH = "units.reformer.capacity"
PRICE = "markets.methanol_sales.price"
# Sobol is balanced for powers of 2; LHS and MC take any count.
METHOD_N = {"mc": N, "lhs": N, "sobol": 16_384}


def draw(dist: dict[str, Any], method: str = "mc", base: float = 1.0, seed: int = 11) -> np.ndarray:
    n = METHOD_N[method]
    spec = SPEC.validate_python(
        {"kind": "monte_carlo", "samples": n, "method": method, "parameters": {PATH: dist}}
    )
    out = generate(spec, {PATH: base}, horizon=1, periods_per_year=1, seed=seed, ids=np.arange(n))
    return out.scalars[PATH]


def paths(
    process: dict[str, Any], horizon: int, ppy: int, n: int = N, method: str = "mc"
) -> np.ndarray:
    spec = SPEC.validate_python(
        {"kind": "monte_carlo", "samples": n, "method": method, "processes": {PRICE: process}}
    )
    out = generate(
        spec, {PRICE: 400.0}, horizon=horizon, periods_per_year=ppy, seed=5, ids=np.arange(n)
    )
    return out.series[PRICE]


# Each case: the spec and an independent scipy reference built from the textbook formulas.
_LN_SIGMA = math.sqrt(math.log(1 + 0.3**2))
CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "normal": ({"dist": "normal", "mean": 5.0, "std": 2.0}, stats.norm(5.0, 2.0)),
    # mean 10, std 3 of the variable: median = mean / sqrt(1 + cv^2).
    "lognormal": (
        {"dist": "lognormal", "mean": 10.0, "std": 3.0},
        stats.lognorm(s=_LN_SIGMA, scale=10.0 / math.sqrt(1 + 0.3**2)),
    ),
    "uniform": ({"dist": "uniform", "low": 2.0, "high": 7.0}, stats.uniform(2.0, 5.0)),
    "triangular": (
        {"dist": "triangular", "low": 1.0, "most_likely": 2.0, "high": 5.0},
        stats.triang(c=0.25, loc=1.0, scale=4.0),
    ),
    # PERT(0, 3, 10), lamb 4: alpha = 1 + 4 * 0.3, beta = 1 + 4 * 0.7.
    "pert": (
        {"dist": "pert", "low": 0.0, "most_likely": 3.0, "high": 10.0},
        stats.beta(2.2, 3.8, loc=0.0, scale=10.0),
    ),
}


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_marginal_matches_scipy_reference(name: str, method: str) -> None:
    spec, ref = CASES[name]
    x = draw(spec, method)
    assert stats.kstest(x, ref.cdf).pvalue > P_MIN


def test_lognormal_is_parameterised_by_mean_and_std_of_the_variable() -> None:
    x = draw({"dist": "lognormal", "mean": 10.0, "std": 3.0})
    assert abs(x.mean() - 10.0) < 4 * 3.0 / math.sqrt(N)
    assert abs(x.std() - 3.0) < 0.1


def test_pert_mean_is_the_classic_weighted_average() -> None:
    x = draw({"dist": "pert", "low": 0.0, "most_likely": 3.0, "high": 10.0})
    assert abs(x.mean() - (0.0 + 4 * 3.0 + 10.0) / 6) < 4 * x.std() / math.sqrt(N)


def test_discrete_frequencies_match_probabilities() -> None:
    x = draw({"dist": "discrete", "values": [3.0, 1.0, 2.0], "probabilities": [0.5, 0.2, 0.3]})
    assert set(np.unique(x)) == {1.0, 2.0, 3.0}
    observed = [np.sum(x == v) for v in (1.0, 2.0, 3.0)]
    assert stats.chisquare(observed, [0.2 * N, 0.3 * N, 0.5 * N]).pvalue > P_MIN


@pytest.mark.parametrize("method", ["mc", "lhs", "sobol"])
def test_truncated_normal_matches_scipy_truncnorm(method: str) -> None:
    x = draw({"dist": "normal", "mean": 0.0, "std": 1.0, "truncate": [-0.5, 1.5]}, method)
    assert x.min() >= -0.5 and x.max() <= 1.5
    assert stats.kstest(x, stats.truncnorm(-0.5, 1.5).cdf).pvalue > P_MIN


def test_truncation_deep_in_the_upper_tail_stays_accurate() -> None:
    x = draw({"dist": "normal", "mean": 0.0, "std": 1.0, "truncate": [6.0, None]})
    assert x.min() >= 6.0
    assert stats.kstest(x, stats.truncnorm(6.0, np.inf).cdf).pvalue > P_MIN


def test_one_sided_truncation_of_lognormal() -> None:
    spec, ref = CASES["lognormal"]
    x = draw({**spec, "truncate": [None, 12.0]})
    assert x.max() <= 12.0
    assert stats.kstest(x, lambda v: ref.cdf(v) / ref.cdf(12.0)).pvalue > P_MIN


def test_truncated_discrete_renormalises_over_kept_values() -> None:
    x = draw(
        {
            "dist": "discrete",
            "values": [1.0, 2.0, 3.0],
            "probabilities": [0.2, 0.3, 0.5],
            "truncate": [1.5, 3.0],
        }
    )
    observed = [np.sum(x == 2.0), np.sum(x == 3.0)]
    assert sum(observed) == N
    assert stats.chisquare(observed, [0.3 / 0.8 * N, 0.5 / 0.8 * N]).pvalue > P_MIN


def test_multiplier_mode_scales_the_base_value() -> None:
    dist = {"dist": "normal", "mean": 1.0, "std": 0.1}
    absolute = draw(dist, base=250.0)
    scaled = draw({**dist, "mode": "multiplier"}, base=250.0)
    np.testing.assert_array_equal(scaled, absolute * 250.0)
    assert stats.kstest(scaled, stats.norm(250.0, 25.0).cdf).pvalue > P_MIN


def test_truncation_bounds_are_on_the_multiplier() -> None:
    x = draw(
        {"dist": "normal", "mean": 1.0, "std": 0.2, "mode": "multiplier", "truncate": [0.9, 1.1]},
        base=250.0,
    )
    assert x.min() >= 225.0 and x.max() <= 275.0


@pytest.mark.parametrize(
    ("dist", "field"),
    [
        ({"dist": "normal", "mean": 1.0, "std": 0.0}, "std"),
        ({"dist": "lognormal", "mean": -1.0, "std": 1.0}, "mean"),
        ({"dist": "uniform", "low": 3.0, "high": 3.0}, "low"),
        ({"dist": "triangular", "low": 0.0, "most_likely": 5.0, "high": 4.0}, "most_likely"),
        ({"dist": "pert", "low": 0.0, "most_likely": 1.0, "high": 4.0, "lamb": 0.0}, "lamb"),
        ({"dist": "triangular", "low": 0.0, "mode": 1.0, "high": 4.0}, "most_likely"),
        ({"dist": "discrete", "values": [1.0, 2.0], "probabilities": [0.5, 0.4]}, "sum to 1"),
        ({"dist": "discrete", "values": [1.0, 2.0], "probabilities": [1.0]}, "probabilities"),
        ({"dist": "discrete", "values": [1.0, 1.0], "probabilities": [0.5, 0.5]}, "distinct"),
        ({"dist": "uniform", "low": 0.0, "high": 1.0, "truncate": [2.0, 3.0]}, "truncate"),
        ({"dist": "normal", "mean": 0.0, "std": 1.0, "truncate": [1.0, 0.0]}, "truncate"),
        ({"dist": "normal", "mean": math.nan, "std": 1.0}, "mean"),
        ({"dist": "normal", "mean": 0.0, "std": 1.0, "sd": 1.0}, "sd"),
        ({"dist": "gamma", "shape": 2.0}, "dist"),
    ],
)
def test_invalid_distribution_is_refused_naming_the_field(dist: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DIST.validate_python(dist)


# --- price processes -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mc", "sobol"])
def test_gbm_terminal_mean_and_log_return_variance(method: str) -> None:
    s0, mu, sigma, ppy, horizon = 100.0, 0.05, 0.2, 12, 25
    n = METHOD_N[method]
    x = paths({"process": "gbm", "s0": s0, "mu": mu, "sigma": sigma}, horizon, ppy, n, method)
    assert x.shape == (n, horizon)
    assert np.all(x[:, 0] == s0)
    t_end = (horizon - 1) / ppy
    sd = s0 * math.exp(mu * t_end) * math.sqrt(math.expm1(sigma**2 * t_end))
    assert abs(x[:, -1].mean() - s0 * math.exp(mu * t_end)) < 4 * sd / math.sqrt(n)
    returns = np.diff(np.log(x), axis=1)
    assert returns.var() == pytest.approx(sigma**2 / ppy, rel=0.02)
    terminal = stats.norm((mu - sigma**2 / 2) * t_end, sigma * math.sqrt(t_end))
    assert stats.kstest(np.log(x[:, -1] / s0), terminal.cdf).pvalue > P_MIN


def test_gbm_starts_at_the_base_value_by_default() -> None:
    x = paths({"process": "gbm", "sigma": 0.3}, horizon=4, ppy=1, n=100)
    assert np.all(x[:, 0] == 400.0)


@pytest.mark.parametrize("method", ["mc", "lhs"])
def test_ou_terminal_law_matches_closed_form(method: str) -> None:
    s0, m, kappa, sigma, ppy, horizon = 50.0, 80.0, 1.5, 10.0, 4, 9
    proc = {"process": "ou", "s0": s0, "mean": m, "kappa": kappa, "sigma": sigma}
    x = paths(proc, horizon, ppy, method=method)
    t_end = (horizon - 1) / ppy
    mean = m + (s0 - m) * math.exp(-kappa * t_end)
    var = sigma**2 * (1 - math.exp(-2 * kappa * t_end)) / (2 * kappa)
    assert np.all(x[:, 0] == s0)
    assert abs(x[:, -1].mean() - mean) < 4 * math.sqrt(var / N)
    assert x[:, -1].var() == pytest.approx(var, rel=0.05)
    assert stats.kstest(x[:, -1], stats.norm(mean, math.sqrt(var)).cdf).pvalue > P_MIN


def test_ou_without_reversion_is_brownian_motion() -> None:
    x = paths({"process": "ou", "kappa": 0.0, "sigma": 6.0}, horizon=13, ppy=12)
    assert stats.kstest(x[:, -1], stats.norm(400.0, 6.0).cdf).pvalue > P_MIN


def test_log_ou_mean_reverts_the_log_price() -> None:
    proc = {"process": "ou", "s0": 300.0, "mean": 500.0, "kappa": 0.8, "sigma": 0.25, "log": True}
    x = paths(proc, horizon=11, ppy=2)
    t_end = 5.0
    mean = math.log(500.0) + (math.log(300.0) - math.log(500.0)) * math.exp(-0.8 * t_end)
    sd = 0.25 * math.sqrt((1 - math.exp(-1.6 * t_end)) / 1.6)
    assert np.all(x > 0)
    assert stats.kstest(np.log(x[:, -1]), stats.norm(mean, sd).cdf).pvalue > P_MIN


@pytest.mark.parametrize(
    ("proc", "field"),
    [
        ({"process": "gbm", "sigma": -0.1}, "sigma"),
        ({"process": "ou", "kappa": -1.0, "sigma": 1.0}, "kappa"),
        ({"process": "ou", "kappa": 1.0, "sigma": 1.0, "theta": 2.0}, "theta"),
        ({"process": "heston", "sigma": 1.0}, "process"),
    ],
)
def test_invalid_process_is_refused_naming_the_field(proc: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PROCESS.validate_python(proc)
