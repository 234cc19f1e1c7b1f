"""Sampling by index: any chunk's rows from (seed, ids), in memory that follows the chunk."""

from __future__ import annotations

import itertools
import tracemalloc
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter
from scipy import stats
from scipy.stats import qmc

from edt_compute.sampling import permute, sobol_points, uniforms
from edt_compute.scenarios import ScenarioInputs, ScenarioSpec, generate

SPEC: TypeAdapter[Any] = TypeAdapter(ScenarioSpec)
BASE = {"units.a.capacity": 100.0, "units.a.availability": 0.9, "finance.discount_rate": 0.1}
HUGE, SMALL, K = 10**12, 10**6, 10_000
# (method, adaptive): the adaptive Sobol path is randomised QMC over 16 replicates.
METHODS = [("mc", False), ("lhs", False), ("sobol", False), ("sobol", True), ("lhs", True)]


def mc_spec(method: str, n: int, adaptive: bool = False) -> Any:
    data: dict[str, Any] = {
        "kind": "monte_carlo",
        "method": method,
        "parameters": {
            "units.a.capacity": {
                "dist": "lognormal",
                "mean": 1.0,
                "std": 0.2,
                "mode": "multiplier",
            },
            "units.a.availability": {
                "dist": "triangular",
                "low": 0.8,
                "most_likely": 0.9,
                "high": 1,
            },
            "finance.discount_rate": {"dist": "uniform", "low": 0.08, "high": 0.12},
        },
    }
    if adaptive:
        data["until"] = {"statistic": "mean", "half_width": 0.1, "max_samples": n}
    else:
        data["samples"] = n
    return SPEC.validate_python(data)


def rows(s: Any, ids: np.ndarray) -> ScenarioInputs:
    return generate(s, BASE, horizon=3, periods_per_year=1, seed=11, ids=ids)


def peak_bytes(s: Any, ids: np.ndarray) -> int:
    rows(s, ids[:2])  # warm caches (scrambled direction numbers, round keys) and imports
    tracemalloc.start()
    try:
        rows(s, ids)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("method", "adaptive"), METHODS)
def test_a_chunk_of_a_1e12_design_costs_memory_of_the_chunk_not_of_the_design(
    method: str, adaptive: bool
) -> None:
    near_end = np.arange(HUGE - K - 3, HUGE - 3)
    huge = peak_bytes(mc_spec(method, HUGE, adaptive), near_end)
    small = peak_bytes(mc_spec(method, SMALL, adaptive), near_end - (HUGE - SMALL))
    # The inputs themselves are 3 x 10,000 float64 (240 kB) plus their table columns.
    assert huge < 4_000_000
    assert huge < 1.25 * small + 100_000


@pytest.mark.parametrize(("method", "adaptive"), METHODS)
def test_rows_of_a_1e12_design_are_identical_from_any_split(method: str, adaptive: bool) -> None:
    s = mc_spec(method, HUGE, adaptive)
    start = HUGE // 3 + 12_345
    whole = rows(s, np.arange(start, start + 2_000))
    cuts = [start, start + 1, start + 700, start + 1_999, start + 2_000]
    pieces = [rows(s, np.arange(a, b)) for a, b in itertools.pairwise(cuts)]
    shuffled = np.random.default_rng(0).permutation(np.arange(start, start + 2_000))
    out_of_order = rows(s, shuffled)
    for path, values in whole.scalars.items():
        np.testing.assert_array_equal(np.concatenate([p.scalars[path] for p in pieces]), values)
        np.testing.assert_array_equal(out_of_order.scalars[path], values[shuffled - start])


@pytest.mark.parametrize("n", [1, 2, 997, 1000, 4096, 4097])
def test_lhs_puts_exactly_one_point_in_each_stratum_of_each_dimension(n: int) -> None:
    u = uniforms("lhs", n, 5, 3, np.arange(n))
    for j in range(5):
        assert sorted(np.floor(u[j] * n).astype(int).tolist()) == list(range(n))


def test_lhs_stratification_holds_whatever_the_chunking() -> None:
    n = 1000
    parts = [uniforms("lhs", n, 3, 8, np.arange(a, min(a + 137, n))) for a in range(0, n, 137)]
    u = np.concatenate(parts, axis=1)
    for j in range(3):
        assert sorted(np.floor(u[j] * n).astype(int).tolist()) == list(range(n))


@pytest.mark.parametrize("n", [2, 3, 4, 5, 16, 17, 1023, 1024, 1025, 100_003])
def test_keyed_permutation_is_a_bijection_of_0_to_n(n: int) -> None:
    keys = np.random.SeedSequence(n).generate_state(6, np.uint64)
    image = permute(np.arange(n), n, keys)
    np.testing.assert_array_equal(np.sort(image), np.arange(n))


def test_lhs_dimensions_are_uncorrelated_and_differ_by_seed() -> None:
    n = 4096
    u = uniforms("lhs", n, 4, 21, np.arange(n))
    rho = stats.spearmanr(u.T).statistic
    off_diagonal = rho[~np.eye(4, dtype=bool)]
    # 1 / sqrt(n - 1) is the standard error of a rank correlation of independent columns.
    assert np.max(np.abs(off_diagonal)) < 4 / np.sqrt(n - 1)
    other = uniforms("lhs", n, 4, 22, np.arange(n))
    assert not np.array_equal(np.floor(u * n), np.floor(other * n))


@pytest.mark.parametrize("bits", [30, 64])
def test_sobol_points_by_index_equal_scipys_own_sequence(bits: int) -> None:
    engine = qmc.Sobol(6, scramble=True, bits=bits, rng=17)
    np.testing.assert_array_equal(
        sobol_points(6, 17, None, bits, np.arange(4096)).T, engine.random(4096)
    )
    # Drawn in sequence, not by fast_forward: scipy's fails on 64-bit engines (scipy 1.17).
    later = qmc.Sobol(6, scramble=True, bits=bits, rng=17).random(2**17)[100_000:100_064]
    np.testing.assert_array_equal(
        sobol_points(6, 17, None, bits, np.arange(100_000, 100_064)).T, later
    )


def test_rqmc_replicates_are_scipy_sequences_keyed_by_seed_and_replicate() -> None:
    r, replicates = 5, 16
    engine = qmc.Sobol(3, scramble=True, rng=np.random.default_rng([11, r]))
    expected = engine.random(32) + 0.5 * 2.0**-30  # centred in its cell, like every Sobol draw
    ids = np.arange(32) * replicates + r
    np.testing.assert_array_equal(uniforms("sobol", 1024, 3, 11, ids, replicates).T, expected)
