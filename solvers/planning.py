"""PlanningModel: build the MILP once per model structure, re-solve it per scenario.

    pm = PlanningModel(model, SolverOptions(time_limit=10, mip_gap=1e-4))
    res = pm.solve(cm, s)                     # optimise dispatch and project builds
    res = pm.solve(cm, s, builds=b)           # builds given: simulate with optimal dispatch
    res = pm.solve(cm, s, free=[0])           # only project 0 may be built
    res = pm.solve(cm, s, build_cost=c)       # c (P, T) added to the build columns' objective
    sim = simulate(cm.scenario(s), res.builds[None, :], res.plan)

The result's plan goes through the kernel's `simulate`, so optimize-mode scenarios report the
same balances, accounts and metrics as simulate-mode ones. A failed scenario is a result with
status `error` (and a message), never an exception; only caller mistakes (a compiled model of
another structure, a bad scenario index or builds array) raise ValueError.

One PlanningModel holds one HiGHS instance: use one per thread (or per Ray actor).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.model import EnterpriseModel
from edt_compute.operating_rule import PhysicalPlan
from solvers.compile import MilpNumbers, ParametricMilp, compile_pyomo
from solvers.data import scenario_params
from solvers.formulation import build_formulation
from solvers.highs_instance import HighsInstance
from solvers.status import SolverOptions, SolveStatus
from solvers.structure import MilpStructure

# Pyomo keeps module-level state while building expressions; building is rare, so serialise it.
_PYOMO_LOCK = threading.Lock()


@dataclass(frozen=True)
class PlanResult:
    status: SolveStatus
    objective: float  # NPV of free cash flow; NaN without a solution
    bound: float  # best bound on the objective (MIP dual bound)
    mip_gap: float
    solve_seconds: float  # wall time inside HiGHS
    builds: np.ndarray  # (P,) build period per project, -1 = not built
    plan: PhysicalPlan | None  # S=1 plan; None without a solution
    message: str = ""  # why there is no plan, or why it may not be optimal
    warm_started: bool = False  # the previous scenario's solution was offered as a start


def compile_milp(model: EnterpriseModel) -> ParametricMilp:
    """The model's MILP as a parametric HiGHS matrix: the Pyomo build (~0.1-1 s) done once,
    e.g. by a job's supervisor, whose result (plain arrays, picklable) every worker reuses."""
    structure = MilpStructure.from_model(model)
    with _PYOMO_LOCK:
        pyomo_model = build_formulation(
            structure, scenario_params(structure, compile_model(model, 1), 0)
        )
        return compile_pyomo(pyomo_model)


class PlanningModel:
    def __init__(
        self,
        model: EnterpriseModel,
        options: SolverOptions | None = None,
        milp: ParametricMilp | None = None,
        *,
        warm_start: bool = True,
    ) -> None:
        """`milp`: the model's compiled matrix (`compile_milp`), if already at hand;
        `warm_start`: offer the last scenario's solution as a start to the next solve."""
        self.model = model
        self.options = options or SolverOptions()
        self.warm_start = warm_start
        self.structure = MilpStructure.from_model(model)
        self.milp = milp if milp is not None else compile_milp(model)
        self._highs = HighsInstance(self.milp, self.options)
        self._checked = model  # the last model whose structure matched; skips re-checking
        self._int_cols = np.flatnonzero(self.milp.integer).astype(np.int32)
        self._start: np.ndarray | None = None  # integer values of the last feasible solution

    def numbers(
        self,
        cm: CompiledModel,
        s: int,
        builds: np.ndarray | None = None,
        free: Sequence[int] | None = None,
        build_cost: np.ndarray | None = None,
    ) -> MilpNumbers:
        """Scenario s's costs, bounds and coefficients in the compiled order (what HiGHS gets)."""
        nums = self.milp.evaluate(scenario_params(self.structure, cm, s))
        cols = self.milp.columns["build"]
        if build_cost is not None:
            nums.cost[cols] += np.asarray(build_cost, dtype=float)
        if builds is not None:
            nums.col_lower[cols] = nums.col_upper[cols] = self._build_matrix(builds)
        elif free is not None:
            barred = np.setdiff1d(np.arange(len(self.structure.projects)), np.asarray(free, int))
            nums.col_upper[cols[barred]] = 0.0
        return nums

    def solve(
        self,
        cm: CompiledModel,
        s: int,
        builds: np.ndarray | None = None,
        *,
        free: Sequence[int] | None = None,
        build_cost: np.ndarray | None = None,
    ) -> PlanResult:
        """Plan scenario `s` of `cm`.

        `builds` (P,) fixes every project's build period (-1 = not built) and optimises only
        the dispatch; `free` lists the projects the MILP may build (default: all), the others
        are not built. Give at most one of them. `build_cost` (P, T) is added to the objective
        coefficients of the build indicators (progressive hedging's multipliers and proximal
        term); the result's objective then includes it.
        """
        self._check(cm, s, builds, free)
        fixed = None if builds is None else np.asarray(builds, dtype=np.int64)
        unbuilt = np.full(len(self.structure.projects), -1, dtype=np.int64)
        reported = unbuilt if fixed is None else fixed
        if build_cost is not None and np.shape(build_cost) != self.milp.columns["build"].shape:
            raise ValueError(
                f"build_cost: expected shape {self.milp.columns['build'].shape},"
                f" got {np.shape(build_cost)}"
            )
        try:
            nums = self.numbers(cm, s, fixed, free, build_cost)
            self._highs.load(nums)
            start = self._warm_start(fixed, free)
            out = self._highs.run(self._int_cols if start is not None else None, start)
        # A failed scenario is a result, never the end of a job: report whatever went wrong.
        except Exception as exc:
            self._start = None
            return _no_plan(SolveStatus.ERROR, 0.0, reported, f"{type(exc).__name__}: {exc}")
        if out.col_value is None:
            return _no_plan(out.status, out.seconds, reported, out.message)
        self._start = np.round(out.col_value[self._int_cols])
        plan, chosen = self._plan(out.col_value)
        return PlanResult(
            status=out.status,
            objective=out.objective,
            bound=out.bound,
            mip_gap=out.mip_gap,
            solve_seconds=out.seconds,
            builds=chosen,
            plan=plan,
            message=out.message,
            warm_started=start is not None,
        )

    def _build_matrix(self, builds: np.ndarray) -> np.ndarray:
        """(P, T) 0/1 values of the build columns for given build periods."""
        out = np.zeros(self.milp.columns["build"].shape)
        for p, b in enumerate(builds):
            if b >= 0:
                out[p, b] = 1.0
        return out

    def _check(
        self, cm: CompiledModel, s: int, builds: np.ndarray | None, free: Sequence[int] | None
    ) -> None:
        if cm.model is not self._checked:
            self.structure.check(cm)
            self._checked = cm.model
        if not 0 <= s < cm.S:
            raise ValueError(f"scenario index {s} out of range 0..{cm.S - 1}")
        if free is not None:
            if builds is not None:
                raise ValueError("give either builds (all fixed) or free (which may be built)")
            P = len(self.structure.projects)
            if any(not 0 <= int(p) < P for p in free):
                raise ValueError(f"free: project indices must be in 0..{P - 1}, got {list(free)}")
        if builds is not None:
            b = np.asarray(builds)
            P, T = len(self.structure.projects), self.structure.T
            if b.shape != (P,):
                raise ValueError(f"builds: expected shape ({P},), got {b.shape}")
            if np.any((b < -1) | (b >= T)):
                raise ValueError(
                    f"builds: periods must be -1 (not built) or in 0..{T - 1}, got {b.tolist()}"
                )

    def _warm_start(
        self, fixed: np.ndarray | None, free: Sequence[int] | None
    ) -> np.ndarray | None:
        if not self.warm_start or self._start is None:
            return None
        start = self._start.copy()
        # The last solution's builds may contradict this solve's: offer builds that fit it.
        pos = np.searchsorted(self._int_cols, self.milp.columns["build"])
        if fixed is not None:
            start[pos] = self._build_matrix(fixed)
        elif free is not None:
            start[np.delete(pos, np.asarray(free, dtype=int), axis=0)] = 0.0
        return start

    def _plan(self, col: np.ndarray) -> tuple[PhysicalPlan, np.ndarray]:
        cols = self.milp.columns
        st = self.structure
        stock = np.zeros((len(st.resources), st.T))
        if st.stored:
            stock[list(st.stored)] = col[cols["stock"]]
        plan = PhysicalPlan(
            activity=col[cols["x"]][None], volume=col[cols["v"]][None], stock=stock[None]
        )
        built = col[cols["build"]] > 0.5
        chosen = np.where(built.any(axis=1), built.argmax(axis=1), -1).astype(np.int64)
        return plan, chosen


def _no_plan(status: SolveStatus, seconds: float, builds: np.ndarray, message: str) -> PlanResult:
    nan = float("nan")
    return PlanResult(status, nan, nan, nan, seconds, builds, None, message)
