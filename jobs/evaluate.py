"""Evaluate one chunk of a job's scenarios: inputs -> [MILP plan] -> simulation -> metrics.

The same function runs sequentially (tests, debugging) and inside Ray actors, as EMA
Workbench's evaluators do. A scenario that raises or whose sampled values break the model's
bounds is recorded with status `error` and its message; the rest of the chunk goes on.
Project metrics are those of the incremental cash flow: the enterprise with the job's projects
minus the same enterprise without them, on the same scenario draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from edt_compute import finance
from edt_compute.compiled import CompiledModel, compile_model
from edt_compute.params import base_values, scenario_problems
from edt_compute.scenarios import ScenarioInputs, generate
from edt_compute.simulation import SimulationResult, simulate
from jobs.spec import PreparedJob
from jobs.status import ScenarioStatus

TIMESERIES = ("revenue", "ebitda", "capex", "tax", "fcf")


@dataclass
class ChunkResult:
    scenarios: pa.Table
    timeseries: pa.Table | None = None


@dataclass
class _Columns:
    """Per-scenario outputs of a chunk, filled scenario-group by scenario-group."""

    n: int
    status: np.ndarray
    error: list[str | None]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def column(self, name: str, dtype: Any = float, fill: Any = np.nan) -> np.ndarray:
        if name not in self.values:
            self.values[name] = np.full(self.n, fill, dtype=dtype)
        return self.values[name]


class ChunkEvaluator:
    """Evaluates chunks of one job; holds what is worth building once (the MILP model)."""

    def __init__(
        self, job: PreparedJob, milp: Any = None, decision: Mapping[str, int] | None = None
    ) -> None:
        """`milp`: the job's MILP already compiled (`solvers.compile_milp`), so that this
        evaluator never builds the Pyomo model itself. `decision` (decide mode): the chosen
        build period per project (-1 = never), fixed in every scenario's MILP."""
        self.job = job
        self.decision: np.ndarray | None = None
        if job.spec.mode == "decide":
            if decision is None:
                raise ValueError("decide mode: give the decision to evaluate the scenarios under")
            names = [p.name for p in job.model.projects]
            self.decision = np.array([int(decision.get(n, -1)) for n in names], dtype=np.int64)
        self.base = base_values(job.model)
        self._milp = milp
        self._planner: Any = None
        names = [p.name for p in job.model.projects]
        self.selected = [names.index(p) for p in job.projects]

    def inputs(self, ids: np.ndarray) -> ScenarioInputs:
        f = self.job.model.finance
        return generate(
            self.job.spec.scenarios,
            self.base,
            horizon=f.horizon,
            periods_per_year=f.periods_per_year,
            seed=self.job.spec.seed,
            ids=ids,
        )

    def evaluate(self, ids: np.ndarray, skip: Mapping[int, str] | None = None) -> ChunkResult:
        """The chunk's tables; `skip` maps scenario ids not to evaluate (they are known to
        crash their process) to the error recorded for them."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        inputs = self.inputs(ids)
        out = _Columns(n, np.full(n, ScenarioStatus.OK.value, dtype=object), [None] * n)
        bad = scenario_problems(self.job.model, inputs.scalars, n)
        if skip:
            bad = [skip.get(int(i), b) for i, b in zip(ids.tolist(), bad, strict=True)]
        good = np.array([b is None for b in bad], dtype=bool)
        for i in np.flatnonzero(~good):
            out.status[i], out.error[i] = ScenarioStatus.ERROR.value, bad[i]
        flows: dict[str, np.ndarray] = {}
        if good.any():
            idx = np.flatnonzero(good)
            self._run_group(inputs, idx, out, flows)
        return ChunkResult(self._table(ids, inputs, out), self._timeseries(ids, out, flows))

    def _compile(self, inputs: ScenarioInputs, idx: np.ndarray) -> CompiledModel:
        return compile_model(
            self.job.model,
            len(idx),
            scalars={k: v[idx] for k, v in inputs.scalars.items()},
            series={k: v[idx] for k, v in inputs.series.items()},
        )

    def _run_group(
        self, inputs: ScenarioInputs, idx: np.ndarray, out: _Columns, flows: dict[str, np.ndarray]
    ) -> None:
        """Evaluate scenarios idx together; on an exception, one by one to isolate the culprit."""
        try:
            run: Callable[[CompiledModel, np.ndarray, _Columns, dict[str, np.ndarray]], None]
            run = self._simulate if self.job.spec.mode == "simulate" else self._optimize
            run(self._compile(inputs, idx), idx, out, flows)
        except Exception as exc:  # a bad scenario must not fail its neighbours
            if len(idx) == 1:
                out.status[idx[0]] = ScenarioStatus.ERROR.value
                out.error[idx[0]] = f"{type(exc).__name__}: {exc}"
                return
            # Halve until the culprits are alone: a few bad scenarios cost log2(n) reruns.
            half = len(idx) // 2
            self._run_group(inputs, idx[:half], out, flows)
            self._run_group(inputs, idx[half:], out, flows)

    def _builds(self, cm: CompiledModel) -> np.ndarray:
        builds = np.full((cm.S, len(cm.projects)), -1, dtype=np.int64)
        for p in self.selected:
            proj = self.job.model.projects[p]
            builds[:, p] = self.job.spec.build_periods.get(proj.name, proj.earliest_period)
        return builds

    def _simulate(
        self, cm: CompiledModel, idx: np.ndarray, out: _Columns, flows: dict[str, np.ndarray]
    ) -> None:
        with_p = simulate(cm, self._builds(cm))
        without = simulate(cm) if self.selected else with_p
        self._record(cm, idx, with_p, without, out, flows)

    def _optimize(
        self, cm: CompiledModel, idx: np.ndarray, out: _Columns, flows: dict[str, np.ndarray]
    ) -> None:
        """MILP per scenario on one instance built once per evaluator (so once per actor)."""
        from solvers import PlanningModel

        if self._planner is None:
            self._planner = PlanningModel(self.job.model, self.job.spec.solver, milp=self._milp)
        none = np.full(len(cm.projects), -1, dtype=np.int64)
        for s, i in enumerate(idx):
            if self.decision is None:
                res = self._planner.solve(cm, s, free=self.selected)
            else:
                res = self._planner.solve(cm, s, builds=self.decision)
            out.column("objective")[i] = res.objective
            out.column("mip_gap")[i] = res.mip_gap
            out.column("solve_seconds")[i] = res.solve_seconds
            if res.plan is None:
                out.status[i] = ScenarioStatus.of_solve(res.status).value
                out.error[i] = (
                    f"{res.status.value}: {res.message}" if res.message else res.status.value
                )
                continue
            for p, name in enumerate(cm.projects):
                out.column(f"build_{name}", np.int64, -1)[i] = res.builds[p]
            one = cm.scenario(s)
            with_p = simulate(one, res.builds[None, :], res.plan)
            without = with_p
            # Nothing built: the enterprise without the projects is the same problem, so the
            # incremental flow is exactly zero (a second solve would only add solver noise).
            if self.selected and np.any(res.builds >= 0):
                base = self._planner.solve(cm, s, builds=none)
                if base.plan is None:
                    out.status[i] = ScenarioStatus.of_solve(base.status).value
                    out.error[i] = f"without projects: {base.message or base.status.value}"
                    continue
                without = simulate(one, none[None, :], base.plan)
            self._record(one, np.array([i]), with_p, without, out, flows)
            out.status[i] = ScenarioStatus.of_solve(res.status).value

    def _record(
        self,
        cm: CompiledModel,
        idx: np.ndarray,
        with_p: SimulationResult,
        without: SimulationResult,
        out: _Columns,
        flows: dict[str, np.ndarray],
    ) -> None:
        # Row-contiguous flows: numpy then sums every row the same way whatever the chunk
        # size (a one-row view is both C- and F-ordered and would take another summation path).
        cash = np.ascontiguousarray(with_p.fcf - without.fcf if self.selected else with_p.fcf)
        ppy = cm.periods_per_year
        metrics = finance.metrics(cash, cm.discount_rate, ppy)
        # No incremental flow at all (the project is not built): nothing to pay back.
        nothing = ~np.any(cash != 0, axis=1)
        for name in ("payback_years", "discounted_payback_years"):
            metrics[name][nothing] = np.nan
        for name, values in metrics.items():
            out.column(name)[idx] = values
        rate = finance.period_rate(cm.discount_rate, ppy)
        out.column("enterprise_npv")[idx] = finance.npv(rate, np.ascontiguousarray(with_p.fcf))
        if self.job.spec.outputs.timeseries:
            T = cm.T
            for name in TIMESERIES:
                flows.setdefault(name, np.full((out.n, T), np.nan))[idx] = with_p.accounts[name]
            flows.setdefault("incremental_fcf", np.full((out.n, T), np.nan))[idx] = cash

    def _table(self, ids: np.ndarray, inputs: ScenarioInputs, out: _Columns) -> pa.Table:
        cols: dict[str, Any] = {
            "scenario_id": pa.array(ids, pa.int64()),
            "status": pa.array(out.status.astype(str), pa.string()),
            "error": pa.array(out.error, pa.string()),
        }
        for name, values in inputs.columns.items():
            cols[name] = pa.array(values)
        for name in finance.TABLE_METRICS:
            cols[name] = pa.array(out.column(name), pa.float64())
        if self.job.spec.mode in ("optimize", "decide"):
            for name in ("objective", "mip_gap", "solve_seconds"):
                cols[name] = pa.array(out.column(name), pa.float64())
            for proj in self.job.model.projects:
                build = out.column(f"build_{proj.name}", np.int64, -1)
                cols[f"build_{proj.name}"] = pa.array(build, pa.int64())
        return pa.table(cols)

    def _timeseries(
        self, ids: np.ndarray, out: _Columns, flows: dict[str, np.ndarray]
    ) -> pa.Table | None:
        if not self.job.spec.outputs.timeseries:
            return None
        T = self.job.model.finance.horizon
        ok = np.flatnonzero(out.status != ScenarioStatus.ERROR.value)
        cols: dict[str, Any] = {
            "scenario_id": pa.array(np.repeat(ids[ok], T), pa.int64()),
            "period": pa.array(np.tile(np.arange(T), len(ok)), pa.int32()),
        }
        for name in (*TIMESERIES, "incremental_fcf"):
            data = flows.get(name, np.full((out.n, T), np.nan))
            cols[name] = pa.array(data[ok].reshape(-1), pa.float64())
        return pa.table(cols)


def evaluate_chunk(job: PreparedJob, ids: np.ndarray) -> ChunkResult:
    """One-shot evaluation (builds a fresh evaluator; actors keep theirs)."""
    return ChunkEvaluator(job).evaluate(ids)
