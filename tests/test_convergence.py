"""Stopping rules of adaptive Monte Carlo: intervals, checkpoints, the RQMC layout, the spec.

Intervals are checked against independent references: published Wilson intervals, ranks found
by brute force over the binomial law, closed-form statistics of normal and lognormal laws, and
coverage over many independent repetitions at fixed seeds.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats
from scipy.stats import qmc

from edt_compute import risk
from edt_compute.convergence import (
    StoppingRule,
    Until,
    cvar_interval,
    estimate,
    interval,
    mean_interval,
    quantile_interval,
    wilson_interval,
)
from edt_compute.scenarios import MonteCarloSpec, ScenarioSpec, generate

SPEC: TypeAdapter[Any] = TypeAdapter(ScenarioSpec)
P = "units.plant.capacity"
Q = "units.plant.variable_cost"


def mc(method: str = "mc", **over: Any) -> Any:
    data: dict[str, Any] = {
        "kind": "monte_carlo",
        "method": method,
        "parameters": {
            P: {"dist": "uniform", "low": 0.0, "high": 1.0},
            Q: {"dist": "uniform", "low": 0.0, "high": 1.0},
        },
    }
    data.update(over)
    return SPEC.validate_python(data)


def draws(spec: Any, ids: Any, seed: int = 3) -> np.ndarray:
    out = generate(
        spec, {P: 1.0, Q: 1.0}, horizon=4, periods_per_year=1, seed=seed, ids=np.asarray(ids)
    )
    return np.column_stack([out.scalars[P], out.scalars[Q]])


def coverage(hits: list[bool]) -> float:
    return float(np.mean(hits))


# --- intervals against references -----------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_published_values(
    k: int, n: int, lower: float, upper: float
) -> None:
    # Newcombe, Statistics in Medicine 17 (1998) 857-872, Table I, method 3 (Wilson score).
    iv = wilson_interval(k, n, 0.95)
    assert (round(iv.lower, 4), round(iv.upper, 4)) == (lower, upper)
    assert iv.estimate == k / n


def _equal_tailed_ranks(n: int, q: float, c: float) -> tuple[int, int]:
    """Brute force: the largest l whose lower tail is < a, the smallest u whose upper tail is
    <= a (1-based ranks; 0 and n + 1 mean no order statistic reaches that side)."""
    a = (1 - c) / 2
    pmf = stats.binom.pmf(np.arange(n + 1), n, q)
    below = lambda r: float(pmf[:r].sum())  # noqa: E731  P(fewer than r values below the quantile)
    l_ref = max(r for r in range(0, n + 1) if below(r) < a)
    u_ref = min(r for r in range(1, n + 2) if 1 - below(r) <= a + 1e-12)
    assert below(u_ref) - below(l_ref) >= c
    return l_ref, u_ref


@pytest.mark.parametrize(("n", "q", "c"), [(100, 0.05, 0.95), (400, 0.95, 0.9), (2000, 0.05, 0.99)])
def test_quantile_interval_lies_on_the_narrowest_equal_tailed_order_statistics(
    n: int, q: float, c: float
) -> None:
    x = np.random.default_rng(n).normal(size=n)
    low, high = _equal_tailed_ranks(n, q, c)
    iv = quantile_interval(x, "p05" if q == 0.05 else "p95", c)
    s = np.sort(x)
    assert iv.lower == (s[low - 1] if low >= 1 else -math.inf)
    assert iv.upper == (s[high - 1] if high <= n else math.inf)


def test_quantile_interval_is_unbounded_until_enough_values() -> None:
    x = np.random.default_rng(0).normal(size=50)
    # 0.95^50 = 0.077 > 0.025: even the minimum is above the 5% quantile too often.
    iv = quantile_interval(x, "p05", 0.95)
    assert iv.lower == -math.inf and iv.half_width == math.inf
    assert iv.upper == np.sort(x)[_equal_tailed_ranks(50, 0.05, 0.95)[1] - 1]


def test_point_estimates_are_those_of_the_risk_summary() -> None:
    x = np.random.default_rng(1).lognormal(0.0, 0.8, size=997) - 1.2
    x[::50] = np.nan
    ref = risk.summarize(x)
    assert estimate(x, "mean") == pytest.approx(ref["mean"], rel=1e-15)
    assert estimate(x, "p05") == ref["p5"] and estimate(x, "p95") == ref["p95"]
    assert estimate(x, "prob_negative") == ref["prob_negative"]
    assert estimate(x, "cvar95") == pytest.approx(ref["cvar95"], rel=1e-15)


def test_mean_interval_is_the_normal_approximation() -> None:
    x = np.random.default_rng(2).normal(3.0, 2.0, size=500)
    iv = mean_interval(x, 0.9)
    half = stats.norm.ppf(0.95) * np.std(x, ddof=1) / math.sqrt(500)
    assert (iv.lower, iv.upper) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)


def test_intervals_cover_the_true_values_at_the_stated_rate() -> None:
    rng = np.random.default_rng(20261122)
    reps, n = 1000, 1000
    mu, sigma = 0.0, 0.5  # lognormal: mean exp(sigma^2/2), quantiles exp(sigma z_q)
    true_mean = math.exp(sigma**2 / 2)
    true_p05 = math.exp(sigma * stats.norm.ppf(0.05))
    true_p95 = math.exp(sigma * stats.norm.ppf(0.95))
    # Normal N(m, s): the mean of its worst 5% is m - s phi(z_0.05) / 0.05.
    true_cvar = -stats.norm.pdf(stats.norm.ppf(0.05)) / 0.05
    hits: dict[str, list[bool]] = {k: [] for k in ("mean", "p05", "p95", "cvar")}
    for _ in range(reps):
        x = rng.lognormal(mu, sigma, size=n)
        # The tail mean's normal approximation needs more values: ~93% at 50 tail values,
        # nominal at 200 (n = 4000).
        z = rng.normal(size=4 * n)
        for key, iv, truth in (
            ("mean", interval(x, "mean", 0.95), true_mean),
            ("p05", interval(x, "p05", 0.95), true_p05),
            ("p95", interval(x, "p95", 0.95), true_p95),
            ("cvar", cvar_interval(z, 0.95), true_cvar),
        ):
            hits[key].append(iv.lower <= truth <= iv.upper)
    # 1000 repetitions: the binomial standard error of a 95% rate is 0.007.
    for key, h in hits.items():
        assert 0.93 <= coverage(h) <= 0.975, (key, coverage(h))


@pytest.mark.parametrize(("p", "n"), [(0.01, 200), (0.05, 1000), (0.1, 1000), (0.3, 200)])
def test_wilson_interval_has_about_the_stated_coverage_exactly(p: float, n: int) -> None:
    # Exact: sum the binomial probabilities of the counts whose interval holds p.
    holds = [(iv := wilson_interval(k, n, 0.95)).lower <= p <= iv.upper for k in range(n + 1)]
    assert 0.94 <= float(stats.binom.pmf(np.flatnonzero(holds), n, p).sum()) <= 0.97


def test_cvar_interval_waits_for_ten_tail_values() -> None:
    assert cvar_interval(np.arange(199.0), 0.95).half_width == math.inf
    assert cvar_interval(np.arange(200.0), 0.95).half_width < math.inf


# --- randomised QMC -------------------------------------------------------------------------


def test_rqmc_prefix_of_each_replicate_is_a_balanced_net() -> None:
    spec = mc("sobol", until={"half_width": 1.0, "max_samples": 16 * 256})
    u = draws(spec, np.arange(16 * 256))
    for r in range(16):
        for k in (16, 64, 256):  # first k points of replicate r: ids r, r + 16, ...
            pts = u[r::16][:k]
            for j in range(2):
                assert sorted(np.floor(pts[:, j] * k).astype(int)) == list(range(k))


def test_rqmc_replicates_are_independently_scrambled() -> None:
    spec = mc("sobol", until={"half_width": 1.0, "max_samples": 16 * 64})
    u = draws(spec, np.arange(16 * 64))
    firsts = u[:16]  # point 0 of every replicate
    assert len({tuple(p) for p in firsts.tolist()}) == 16
    # Independent scrambles: the replicates' first points are uniform, not clustered.
    assert stats.kstest(firsts[:, 0], "uniform").pvalue > 0.01


def test_rqmc_draws_do_not_depend_on_chunking_or_order() -> None:
    spec = mc("sobol", until={"half_width": 1.0, "max_samples": 16 * 40})
    whole = draws(spec, np.arange(640))
    parts = np.vstack([draws(spec, np.arange(a, min(a + 7, 640))) for a in range(0, 640, 7)])
    shuffled = np.random.default_rng(0).permutation(640)
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole[shuffled], draws(spec, shuffled))


def test_plain_sobol_is_unchanged_by_the_adaptive_option() -> None:
    spec = mc("sobol", samples=64)
    engine = qmc.Sobol(2, scramble=True, rng=3)
    expected = engine.random(64) + 0.5 * 2.0**-30
    assert np.array_equal(draws(spec, np.arange(64)), expected)


def test_rqmc_interval_is_honest_and_narrower_than_independent_draws() -> None:
    # E[u1 * exp(u2)] = (e - 1) / 2 for independent uniforms.
    truth = (math.e - 1) / 2
    spec = mc("sobol", until={"half_width": 1.0, "max_samples": 16 * 64})
    hits, ratio = [], []
    for seed in range(200):
        u = draws(spec, np.arange(16 * 64), seed=seed)
        f = u[:, 0] * np.exp(u[:, 1])
        iv = interval(f, "mean", 0.95, replicates=16)
        hits.append(iv.lower <= truth <= iv.upper)
        ratio.append(iv.half_width / mean_interval(f, 0.95).half_width)
    # 200 repetitions: standard error 0.015 around 0.95.
    assert coverage(hits) >= 0.91
    assert float(np.median(ratio)) < 0.2


def test_rqmc_share_without_spread_falls_back_to_wilson() -> None:
    x = np.ones(16 * 32)  # no negatives in any replicate
    iv = interval(x, "prob_negative", 0.95, replicates=16)
    assert (iv.lower, iv.upper) == pytest.approx(
        (wilson_interval(0, x.size, 0.95).lower, wilson_interval(0, x.size, 0.95).upper)
    )


def test_rqmc_tail_statistics_wait_for_ten_tail_values_per_replicate() -> None:
    x = np.random.default_rng(0).normal(size=16 * 199)
    assert interval(x, "p05", 0.95, replicates=16).half_width == math.inf
    x = np.random.default_rng(0).normal(size=16 * 200)
    assert interval(x, "cvar95", 0.95, replicates=16).half_width < math.inf


# --- checkpoints and the rule --------------------------------------------------------------


def rule(method: str = "mc", samples: int | None = None, **until: Any) -> StoppingRule:
    until.setdefault("half_width", 1.0)
    return StoppingRule.resolve(Until.model_validate(until), samples, method)


def test_default_checkpoints_grow_by_a_tenth_from_min_samples_to_the_cap() -> None:
    points = list(rule(max_samples=400).checkpoints())
    assert points == [256, 281, 309, 339, 372, 400]
    sobol = list(rule("sobol", max_samples=16 * 40).checkpoints())
    assert sobol[0] == 256 and sobol[-1] == 640
    assert all(n % 16 == 0 for n in sobol) and all(np.diff(sobol) >= 16)


def test_explicit_checkpoint_step_and_min_samples() -> None:
    r = rule(samples=1000, min_samples=100, checkpoint=300)
    assert list(r.checkpoints()) == [100, 400, 700, 1000]
    assert list(rule(max_samples=100).checkpoints()) == [100]  # default min capped


def test_rule_is_met_only_when_every_target_is() -> None:
    x = np.random.default_rng(0).normal(10.0, 1.0, size=400)
    half = mean_interval(x, 0.95).half_width
    loose = {"statistic": "mean", "half_width": 2 * half}
    tight = {"statistic": "p95", "half_width": half / 10}
    r = rule(max_samples=400, targets=[loose, tight], half_width=None)
    met, rows = r.evaluate({"npv": x})
    assert not met and [row["met"] for row in rows] == [True, False]
    relative = rule(max_samples=400, relative=1.01 * half / x.mean(), half_width=None)
    assert relative.evaluate({"npv": x})[0]


def test_missing_values_count_in_n_but_not_in_the_statistic() -> None:
    x = np.random.default_rng(0).normal(size=300)
    x[::3] = np.nan
    (row,) = rule(max_samples=300).evaluate({"npv": x})[1]
    assert row["n"] == 300 and row["count"] == 200
    assert row["estimate"] == pytest.approx(np.nanmean(x), rel=1e-15)


# --- the spec ------------------------------------------------------------------------------


def test_samples_is_the_cap_when_until_gives_none() -> None:
    spec = mc(samples=5000, until={"statistic": "p05", "half_width": 3.0})
    assert isinstance(spec, MonteCarloSpec) and spec.total == 5000
    r = spec.stopping_rule()
    assert r is not None and r.max_samples == 5000 and r.targets[0].statistic == "p05"
    assert r.targets[0].metric == "npv" and r.replicates is None
    assert mc("sobol", until={"half_width": 1.0, "max_samples": 1024}).rqmc_replicates == 16


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"until": {"half_width": 1.0}}, "until.max_samples: give"),
        ({"samples": 100, "until": {"half_width": 1.0, "max_samples": 200}}, "disagree"),
        ({"until": {"half_width": 1.0, "max_samples": 200, "min_samples": 300}}, "min_samples"),
        ({"until": {"half_width": 0.0, "max_samples": 200}}, "half_width"),
        ({"until": {"half_width": 1.0, "relative": 0.1, "max_samples": 200}}, "exactly one"),
        ({"until": {"max_samples": 200}}, "at least one target"),
        (
            {"until": {"half_width": 1.0, "targets": [{"relative": 0.1}], "max_samples": 200}},
            "not both",
        ),
        ({"until": {"half_width": 1.0, "max_samples": 200, "confidence": 1.0}}, "confidence"),
        ({"until": {"statistic": "p50", "half_width": 1.0, "max_samples": 200}}, "statistic"),
        ({}, "samples: give"),
    ],
)
def test_invalid_until_is_refused_naming_the_field(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        mc(**over)


@pytest.mark.parametrize("field", ["min_samples", "max_samples", "checkpoint"])
def test_sobol_checkpoints_must_be_whole_rounds_of_replicates(field: str) -> None:
    until = {"half_width": 1.0, "max_samples": 1024, "min_samples": 256, "checkpoint": 64}
    until[field] += 1
    with pytest.raises(ValidationError, match=f"until.{field}.*multiples of until.replicates"):
        mc("sobol", until=until)


def test_every_checkpoint_of_a_long_rule_is_strictly_increasing() -> None:
    for method, cap in itertools.product(("mc", "sobol"), (256, 1600, 160_000)):
        points = list(rule(method, max_samples=cap).checkpoints())
        assert points[-1] == cap and all(np.diff(points) > 0)
