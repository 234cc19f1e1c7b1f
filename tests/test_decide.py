"""Decide mode: one build schedule for all scenarios (two-stage stochastic program)."""

from __future__ import annotations

import numpy as np
import pytest

from edt_compute import decision as dm
from edt_compute.validation import SpecError
from jobs.spec import prepare_job
from tests.decide_support import decide_job, option_model, price_list, random_model, run_decide


def test_option_value_makes_the_stochastic_decision_build_where_the_mean_value_one_does_not() -> (
    None
):
    # Prices 0.5 and 1.9, mean 1.2: the mean-value problem earns 100 * 0.2 = 20 < capex 30 and
    # does not build; built at 0 the line earns 0 or 90 (it idles at a loss), so E = 45 - 30.
    doc = run_decide(decide_job(option_model(), price_list([0.5, 1.9])))
    assert doc["method"] == "enumerate"
    assert doc["schedule"] == {"new_line": 0}
    assert doc["mean_value_schedule"] == {"new_line": -1}
    assert doc["recourse_value"] == pytest.approx(15.0, rel=1e-9)
    assert doc["eev"] == pytest.approx(0.0, abs=1e-9)
    assert doc["wait_and_see"] == pytest.approx(30.0, rel=1e-9)  # (0 + 60) / 2
    assert doc["evpi"] == pytest.approx(15.0, rel=1e-9)
    assert doc["vss"] == pytest.approx(15.0, rel=1e-9)
    assert doc["vss"] > 0
    assert doc["build_right_probability"] == {"new_line": pytest.approx(0.5)}
    late = [c for c in doc["candidates"] if c["schedule"] == {"new_line": 1}]
    assert late[0]["objective"] == pytest.approx(-30.0, rel=1e-9)  # capex, never online


def test_risk_aversion_turns_the_option_down() -> None:
    # w = 0.5, alpha = 0.5: the worst half is the low price, -30 if built: 0.5 * 15 - 0.5 * 30 < 0.
    job = decide_job(option_model(), price_list([0.5, 1.9]), risk_weight=0.5, cvar_alpha=0.5)
    doc = run_decide(job)
    assert doc["schedule"] == {"new_line": -1}
    built = next(c for c in doc["candidates"] if c["schedule"] == {"new_line": 0})
    assert built["objective"] == pytest.approx(-7.5, rel=1e-9)


def test_cvar_is_the_rockafellar_uryasev_value() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=37)
    for alpha in (0.5, 0.8, 0.95):
        grid = np.sort(x)  # the maximum over eta is attained at one of the values
        ru = max(e - np.mean(np.maximum(e - x, 0)) / (1 - alpha) for e in grid)
        assert dm.cvar(x, alpha) == pytest.approx(ru, rel=1e-12)


def test_schedules_enumerate_never_and_every_window_period() -> None:
    got = dm.schedules([(0, 1), (2, 2)])
    assert got.tolist() == [[-1, -1], [-1, 2], [0, -1], [0, 2], [1, -1], [1, 2]]
    assert dm.schedule_count([(0, 1), (2, 2)]) == 6


@pytest.mark.parametrize("seed", range(6))
def test_enumeration_hedging_and_the_extensive_form_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = random_model(rng)
    prices = rng.uniform(0.6, 2.2, size=5).round(3).tolist()
    w = [0.0, 0.5][seed % 2]
    # Progressive hedging is risk-neutral: compared only where w = 0.
    methods = ("enumerate", "extensive", "hedging") if w == 0 else ("enumerate", "extensive")
    docs = {
        m: run_decide(
            decide_job(model, price_list(prices), method=m, risk_weight=w, cvar_alpha=0.6)
        )
        for m in methods
    }
    for m in methods[1:]:
        assert docs[m]["schedule"] == docs["enumerate"]["schedule"], m
        assert docs[m]["objective"] == pytest.approx(docs["enumerate"]["objective"], rel=1e-6), m


def test_bad_decide_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"decide\.risk_weight"):
        decide_job(option_model(), price_list([1.0]), risk_weight=1.5)
    with pytest.raises(SpecError, match=r"decide\.method"):
        decide_job(option_model(), price_list([1.0]), method="guess")
    # Refused before any solve, not after the search has started.
    with pytest.raises(SpecError, match=r"decide\.method: hedging is risk-neutral"):
        decide_job(option_model(), price_list([1.0]), method="hedging", risk_weight=0.3)


def test_decide_mode_refuses_what_it_cannot_decide_on() -> None:
    grid = {"kind": "grid", "parameters": {"markets.sell.price": [1.0, 2.0]}}
    with pytest.raises(SpecError, match=r"scenarios\.kind: decide mode needs monte_carlo or list"):
        decide_job(option_model(), grid)
    with pytest.raises(SpecError, match=r"decide: only decide mode"):
        prepare_job(
            {
                "name": "x",
                "model": option_model(),
                "scenarios": price_list([1.0]),
                "decide": {"risk_weight": 0.1},
            }
        )


@pytest.mark.parametrize("seed", [1, 9, 10])
def test_wait_and_see_is_never_below_a_schedule_even_with_a_mip_gap(seed: int) -> None:
    # A gap of 30 % lets a free solve stop below the optimum, e.g. below never building; the
    # wait-and-see figures must still bound every schedule, so EVPI stays >= 0.
    rng = np.random.default_rng(seed)
    model = random_model(rng)
    prices = rng.uniform(0.6, 2.2, size=5).round(3).tolist()
    doc = run_decide(decide_job(model, price_list(prices), mip_gap=0.3, method="enumerate"))
    assert doc["wait_and_see"] >= doc["recourse_value"] - 1e-9
    assert doc["wait_and_see"] >= doc["eev"] - 1e-9 and doc["evpi"] >= -1e-9
    assert doc["wait_and_see_bound"] >= doc["wait_and_see"] - 1e-6 * max(
        1.0, abs(doc["wait_and_see"])
    )
