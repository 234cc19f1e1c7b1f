"""Decide mode's unit of work: one block of scenarios, solved with free or fixed builds.

A task is a plain dict (it travels to Ray actors and back) naming the scenario stream
(`train`: the job's scenarios; `test`: independent out-of-sample ones with their own seed
stream), the block `start..stop-1` and what to solve:

- `base`: per scenario the wait-and-see optimum (builds free within their windows: objective,
  dual bound, chosen builds) and the optimum with nothing built; plus the block's sums of the
  sampled inputs (for the mean-value problem) without keeping any scenario's inputs.
- `eval`: per scenario and given schedule, the objective with those builds fixed.
- `hedge`: per scenario, the builds chosen with `build_cost` added (progressive hedging).

Each task uses a fresh solver instance (no warm start carried over from another task), so a
task's answer depends only on the task: the same whatever the worker count or task order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.params import base_values, scenario_problems
from edt_compute.scenarios import MonteCarloSpec, ScenarioInputs, ScenarioSpec, generate
from jobs.spec import PreparedJob
from solvers import PlanningModel, compile_milp

Task = dict[str, Any]


def out_of_sample_seed(seed: int) -> int:
    """The out-of-sample stream's seed: derived from the job's, never equal to a job seed's
    stream by construction of the SeedSequence key."""
    key = np.random.SeedSequence([seed, zlib.crc32(b"edt-decide-out-of-sample")])
    return int(key.generate_state(1, np.uint64)[0] % np.uint64(2**63))


@dataclass(frozen=True)
class Stream:
    spec: ScenarioSpec
    seed: int
    total: int


def streams(job: PreparedJob) -> dict[str, Stream]:
    sc = job.spec.scenarios
    out = {"train": Stream(sc, job.spec.seed, job.total)}
    m = job.decide.out_of_sample.samples
    if isinstance(sc, MonteCarloSpec) and m > 0:
        test = sc.model_copy(update={"samples": m, "until": None})
        out["test"] = Stream(test, out_of_sample_seed(job.spec.seed), m)
    return out


class DecisionEvaluator:
    """Runs decide tasks of one job; the compiled MILP is shared, solver instances are not."""

    def __init__(self, job: PreparedJob, milp: Any = None) -> None:
        self.job = job
        self.milp = milp if milp is not None else compile_milp(job.model)
        self.base = base_values(job.model)
        self.streams = streams(job)
        names = [p.name for p in job.model.projects]
        self.selected = [names.index(p) for p in job.projects]
        self.P = len(names)

    def planner(self) -> PlanningModel:
        return PlanningModel(self.job.model, self.job.spec.solver, milp=self.milp)

    def inputs(self, stream: str, ids: np.ndarray) -> ScenarioInputs:
        st = self.streams[stream]
        f = self.job.model.finance
        return generate(
            st.spec,
            self.base,
            horizon=f.horizon,
            periods_per_year=f.periods_per_year,
            seed=st.seed,
            ids=ids,
        )

    def compiled(
        self, stream: str, start: int, stop: int
    ) -> tuple[CompiledModel, list[str | None]]:
        ids = np.arange(start, stop, dtype=np.int64)
        inputs = self.inputs(stream, ids)
        bad = scenario_problems(self.job.model, inputs.scalars, len(ids))
        cm = compile_model(self.job.model, len(ids), inputs.scalars, inputs.series)
        return cm, bad

    def full(self, schedule: np.ndarray) -> np.ndarray:
        """A schedule of the job's projects as builds of all the model's projects."""
        builds = np.full(self.P, -1, dtype=np.int64)
        builds[self.selected] = schedule
        return builds

    def run(self, task: Task) -> dict[str, Any]:
        kind = task["kind"]
        if kind == "base":
            return self._base(task)
        if kind == "eval":
            return self._eval(task)
        if kind == "hedge":
            return self._hedge(task)
        raise ValueError(f"unknown decide task kind {kind!r}")

    def _base(self, task: Task) -> dict[str, Any]:
        start, stop = int(task["start"]), int(task["stop"])
        n = stop - start
        ws, bound, none = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        ws_builds = np.full((n, len(self.selected)), -1, dtype=np.int64)
        error: list[str | None] = [None] * n
        try:
            cm, bad = self.compiled(task["stream"], start, stop)
        except Exception as exc:  # a block whose inputs cannot be compiled: all its scenarios
            return {
                "ws": ws,
                "bound": bound,
                "none": none,
                "ws_builds": ws_builds,
                "error": [f"{type(exc).__name__}: {exc}"] * n,
                "sums": {},
                "count": 0,
            }
        pm = self.planner()
        nothing = np.full(self.P, -1, dtype=np.int64)
        for s in range(n):
            if bad[s] is not None:
                error[s] = bad[s]
                continue
            free = pm.solve(cm, s, free=self.selected)
            base = pm.solve(cm, s, builds=nothing)
            if not (free.status.has_solution and base.status.has_solution):
                failed = free if not free.status.has_solution else base
                error[s] = f"{failed.status.value}: {failed.message}".rstrip(": ")
                continue
            ws[s], bound[s], none[s] = free.objective, free.bound, base.objective
            ws_builds[s] = free.builds[self.selected]
        ok = np.array([e is None for e in error])
        inputs = self.inputs(task["stream"], np.arange(start, stop, dtype=np.int64))
        sums = {f"scalar:{k}": v[ok].sum() for k, v in inputs.scalars.items()}
        sums |= {f"series:{k}": v[ok].sum(axis=0) for k, v in inputs.series.items()}
        return {
            "ws": ws,
            "bound": bound,
            "none": none,
            "ws_builds": ws_builds,
            "error": error,
            "sums": sums,
            "count": int(ok.sum()),
        }

    def _eval(self, task: Task) -> dict[str, Any]:
        """(C, n) objectives with each schedule fixed; -inf where a schedule has no solution."""
        start, stop = int(task["start"]), int(task["stop"])
        scheds = np.asarray(task["schedules"], dtype=np.int64).reshape(-1, len(self.selected))
        out = np.full((len(scheds), stop - start), np.nan)
        cm, bad = self.compiled(task["stream"], start, stop)
        pm = self.planner()
        for c, sched in enumerate(scheds):
            builds = self.full(sched)
            for s in range(stop - start):
                if bad[s] is None:
                    res = pm.solve(cm, s, builds=builds)
                    out[c, s] = res.objective if res.status.has_solution else -np.inf
        return {"objective": out}

    def _hedge(self, task: Task) -> dict[str, Any]:
        """Builds per scenario with the multipliers `w` (n, P, T) and proximal centre `xbar`."""
        start, stop = int(task["start"]), int(task["stop"])
        cm, bad = self.compiled(task["stream"], start, stop)
        pm = self.planner()
        w = np.asarray(task["w"], dtype=float)
        xbar, rho = np.asarray(task["xbar"], dtype=float), float(task["rho"])
        skip = set(task.get("skip", []))
        T = self.job.model.finance.horizon
        chosen = np.full((stop - start, len(self.selected)), -1, dtype=np.int64)
        for s in range(stop - start):
            if bad[s] is not None or start + s in skip:
                continue  # left out of the decision: its base solves failed
            shift = np.zeros((self.P, T))
            # rho/2 (x - xbar)^2 is linear for a 0/1 x: rho/2 (1 - 2 xbar) x + const.
            shift[self.selected] = -w[s] - 0.5 * rho * (1.0 - 2.0 * xbar)
            res = pm.solve(cm, s, free=self.selected, build_cost=shift)
            if not res.status.has_solution:
                raise RuntimeError(f"hedging subproblem of scenario {start + s}: {res.message}")
            chosen[s] = res.builds[self.selected]
        return {"builds": chosen}


def mean_value_schedule(ev: DecisionEvaluator, sums: dict[str, Any], count: int) -> np.ndarray:
    """The mean-value problem's schedule: builds chosen on the inputs averaged over the
    scenarios (the deterministic decision the EEV evaluates)."""
    scalars = {k[7:]: np.array([v / count]) for k, v in sums.items() if k.startswith("scalar:")}
    series = {
        k[7:]: np.asarray(v)[None, :] / count for k, v in sums.items() if k.startswith("series:")
    }
    cm = compile_model(ev.job.model, 1, scalars, series)
    res = ev.planner().solve(cm, 0, free=ev.selected)
    if not res.status.has_solution:
        raise RuntimeError(f"the mean-value problem has no solution: {res.message}")
    return np.asarray(res.builds[ev.selected], dtype=np.int64)
