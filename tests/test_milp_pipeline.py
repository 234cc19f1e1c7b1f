"""Build once, re-solve many: the MILP plan through the kernel, warm re-solves, threads, failures."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.finance import npv, period_rate
from edt_compute.library import load_model
from edt_compute.simulation import balance_residual, simulate
from solvers import PlanningModel, PlanResult, SolverOptions, SolveStatus

# Optimality to round-off, so that objectives reached by different search paths compare at 1e-6.
EXACT = SolverOptions(mip_gap=1e-9)


def _methanol_scenarios() -> CompiledModel:
    """Scenarios chosen so that the debottleneck is built in some and not in others."""
    gas = np.array([1.0, 1.5, 0.7, 1.2, 0.9, 1.6, 0.8, 1.1]) * 0.11
    methanol = np.array([1.0, 0.7, 1.3, 0.9, 1.1, 0.6, 1.4, 1.0]) * 0.32
    capex = np.array([1.0, 3.0, 0.5, 4.0, 1.5, 2.0, 0.8, 6.0]) * 50
    model = load_model("methanol_ammonia")
    return compile_model(
        model,
        gas.size,
        scalars={
            "markets.gas_supply.price": gas,
            "markets.methanol_sales.price": methanol,
            "projects.methanol_debottleneck.capex": capex,
        },
    )


@pytest.fixture(scope="module")
def methanol() -> CompiledModel:
    return _methanol_scenarios()


@pytest.fixture(scope="module")
def warm_results(methanol: CompiledModel) -> list[PlanResult]:
    pm = PlanningModel(methanol.model, EXACT)
    return [pm.solve(methanol, s) for s in range(methanol.S)]


def _kernel_npv(cm: CompiledModel, res: PlanResult) -> tuple[float, float]:
    """NPV of the kernel's FCF for the MILP plan, and the largest balance residual."""
    assert res.plan is not None
    sim = simulate(cm, res.builds[None, :], res.plan)
    scale = max(1.0, float(np.abs(sim.production).max()))
    residual = float(np.abs(balance_residual(cm, sim)).max()) / scale
    return float(npv(period_rate(cm.discount_rate, cm.periods_per_year), sim.fcf)[0]), residual


def test_scenarios_differ_in_which_projects_get_built(warm_results: list[PlanResult]) -> None:
    assert all(r.status is SolveStatus.OPTIMAL for r in warm_results)
    assert {int(r.builds[0]) for r in warm_results} >= {-1, 0}


def test_milp_plan_closes_the_kernel_balances_and_its_objective_is_the_kernel_npv(
    methanol: CompiledModel, warm_results: list[PlanResult]
) -> None:
    for s, res in enumerate(warm_results):
        kernel, residual = _kernel_npv(methanol.scenario(s), res)
        assert residual < 1e-9
        # Tax, working-capital lags, capex profile, depreciation and salvage all as the kernel.
        assert res.objective == pytest.approx(kernel, rel=1e-6, abs=1e-6)


def test_objective_is_the_kernel_npv_on_a_second_bundled_model() -> None:
    model = load_model("steel_minimill")
    rebar = np.array([1.0, 0.8, 1.2]) * 0.68
    cm = compile_model(model, 3, scalars={"markets.rebar_sales.price": rebar})
    pm = PlanningModel(model, EXACT)
    for s in range(cm.S):
        res = pm.solve(cm, s)
        assert res.status is SolveStatus.OPTIMAL
        kernel, residual = _kernel_npv(cm.scenario(s), res)
        assert residual < 1e-9
        assert res.objective == pytest.approx(kernel, rel=1e-6)


def test_warm_resolve_gives_the_objective_of_a_fresh_build(
    methanol: CompiledModel, warm_results: list[PlanResult]
) -> None:
    assert all(r.warm_started for r in warm_results[1:])
    for s in (0, 1, 2, 3, 7):
        fresh = PlanningModel(methanol.model, EXACT).solve(methanol, s)
        assert fresh.builds.tolist() == warm_results[s].builds.tolist()
        assert warm_results[s].objective == pytest.approx(fresh.objective, rel=1e-6)


def test_solving_on_several_threads_matches_sequential(
    methanol: CompiledModel, warm_results: list[PlanResult]
) -> None:
    workers = [PlanningModel(methanol.model, EXACT) for _ in range(3)]

    def run(w: int) -> list[tuple[int, float]]:
        return [
            (s, workers[w].solve(methanol, s).objective) for s in range(w, methanol.S, len(workers))
        ]

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        parallel = dict(pair for part in pool.map(run, range(len(workers))) for pair in part)
    assert sorted(parallel) == list(range(methanol.S))
    for s, objective in parallel.items():
        assert objective == pytest.approx(warm_results[s].objective, rel=1e-6)


def test_fixed_builds_reproduce_the_optimum_and_bound_other_choices(
    methanol: CompiledModel, warm_results: list[PlanResult]
) -> None:
    pm = PlanningModel(methanol.model, EXACT)
    for s in (0, 1):
        best = warm_results[s]
        same = pm.solve(methanol, s, builds=best.builds)
        assert same.builds.tolist() == best.builds.tolist()
        assert same.objective == pytest.approx(best.objective, rel=1e-6)
        other = np.array([5]) if best.builds[0] < 0 else np.array([-1])
        forced = pm.solve(methanol, s, builds=other)
        assert forced.builds.tolist() == other.tolist()
        assert forced.objective <= best.objective + 1e-6 * abs(best.objective)
        kernel, _ = _kernel_npv(methanol.scenario(s), forced)
        assert forced.objective == pytest.approx(kernel, rel=1e-6)


def test_failed_and_infeasible_scenarios_are_results_and_the_instance_recovers(
    methanol: CompiledModel,
) -> None:
    pm = PlanningModel(methanol.model, EXACT)
    good = pm.solve(methanol, 0)
    broken = dataclasses.replace(methanol, price=np.where(True, np.nan, methanol.price))
    failed = pm.solve(broken, 0)
    assert failed.status is SolveStatus.ERROR
    assert "non-finite" in failed.message
    assert failed.plan is None and failed.builds.tolist() == [-1]

    model = methanol.model
    hard = compile_model(
        model,
        2,
        scalars={
            "markets.methanol_sales.shortfall_penalty": np.array([0.0, 0.0]),
            "markets.methanol_sales.min_volume": np.array([500.0, 60.0]),
        },
    )
    infeasible = pm.solve(hard, 0)
    assert infeasible.status is SolveStatus.INFEASIBLE
    assert pm.solve(hard, 1).status is SolveStatus.OPTIMAL
    again = pm.solve(methanol, 0)
    assert again.objective == pytest.approx(good.objective, rel=1e-6)


def test_caller_mistakes_raise(methanol: CompiledModel) -> None:
    pm = PlanningModel(methanol.model, EXACT)
    other = compile_model(load_model("steel_minimill"), 1)
    with pytest.raises(ValueError, match="structure"):
        pm.solve(other, 0)
    with pytest.raises(ValueError, match="out of range"):
        pm.solve(methanol, methanol.S)
    with pytest.raises(ValueError, match="builds"):
        pm.solve(methanol, 0, builds=np.array([0, 1]))
    with pytest.raises(ValueError, match="builds"):
        pm.solve(methanol, 0, builds=np.array([methanol.T]))
    with pytest.raises(ValueError, match="free"):
        pm.solve(methanol, 0, free=[1])
    with pytest.raises(ValueError, match="either"):
        pm.solve(methanol, 0, builds=np.array([0]), free=[0])


def test_a_solve_cut_short_by_the_time_limit_is_a_result(methanol: CompiledModel) -> None:
    # Far too short to prove optimality; whether a first solution is found in time varies.
    pm = PlanningModel(methanol.model, SolverOptions(time_limit=1e-4), warm_start=False)
    res = pm.solve(methanol, 0)
    assert res.status in (SolveStatus.TIME_LIMIT, SolveStatus.ERROR, SolveStatus.OPTIMAL)
    assert (res.plan is not None) == res.status.has_solution
    if res.status is SolveStatus.ERROR:
        assert "before finding a feasible solution" in res.message


def test_optimal_dispatch_is_at_least_as_good_as_the_operating_rule(
    methanol: CompiledModel, warm_results: list[PlanResult]
) -> None:
    pm = PlanningModel(methanol.model, EXACT)
    better = 0
    for s, best in enumerate(warm_results):
        cm = methanol.scenario(s)
        rule = simulate(cm, best.builds[None, :])
        rule_npv = float(npv(period_rate(cm.discount_rate, cm.periods_per_year), rule.fcf)[0])
        dispatch = pm.solve(methanol, s, builds=best.builds)
        assert dispatch.objective >= rule_npv - 1e-9 * abs(rule_npv)
        better += dispatch.objective > rule_npv + 1e-6
    assert better >= 1  # the myopic rule is not always optimal on this set


@pytest.mark.parametrize("share", [0.0, 2.0])
def test_passing_the_whole_model_or_changing_entries_gives_the_same_results(
    methanol: CompiledModel,
    warm_results: list[PlanResult],
    share: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # share 0: every scenario re-passes the model; 2: every scenario changes entries in place.
    from solvers.highs_instance import HighsInstance

    monkeypatch.setattr("solvers.highs_instance._REPASS_SHARE", share)
    pm = PlanningModel(methanol.model, EXACT)
    highs = HighsInstance(pm.milp, EXACT)
    for s in (3, 0, 5):
        highs.load(pm.numbers(methanol, s))
        out = highs.run()
        assert out.objective == pytest.approx(warm_results[s].objective, rel=1e-6)
    assert highs.repasses == (3 if share == 0.0 else 1)  # each path was the one taken


def test_a_worker_given_the_compiled_milp_never_builds_pyomo(
    methanol: CompiledModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    import solvers.planning as planning
    from solvers import compile_milp

    model = load_model("methanol_ammonia")
    shipped = pickle.loads(pickle.dumps(compile_milp(model)))  # as through Ray's object store

    def no_pyomo(*_: object, **__: object) -> None:
        raise AssertionError("the Pyomo model was built again")

    monkeypatch.setattr(planning, "build_formulation", no_pyomo)
    given = PlanningModel(model, milp=shipped).solve(methanol, 0)
    monkeypatch.undo()
    fresh = PlanningModel(model).solve(methanol, 0)
    assert given.status is fresh.status is SolveStatus.OPTIMAL
    assert given.objective == pytest.approx(fresh.objective, rel=1e-9)


def test_solving_prints_nothing_on_stdout() -> None:
    import subprocess
    import sys

    script = (
        "from edt_compute.compiled import compile_model\n"
        "from edt_compute.library import load_model\n"
        "from solvers import PlanningModel\n"
        "m = load_model('methanol_ammonia')\n"
        "PlanningModel(m).solve(compile_model(m, 1), 0)\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "done\n", out.stdout  # no "Running HiGHS ..." banner
