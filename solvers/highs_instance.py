"""A HiGHS model kept alive across scenarios, driven through highspy directly.

Pyomo's solver wrappers are not used at solve time: they capture output around every solve,
which deadlocks in parallel use (Pyomo #3456, #3908), and their per-solve Python work is what
re-solving is meant to avoid. Only numbers that changed since the last scenario are pushed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

import highspy
import numpy as np

from solvers.compile import MilpNumbers, ParametricMilp
from solvers.status import SolverOptions, SolveStatus, classify

# Past this share of changed coefficients, passing the whole model again is cheaper than
# changing entries one by one (each changeCoeff searches its column).
_REPASS_SHARE = 0.25


@dataclass(frozen=True)
class RunOutcome:
    status: SolveStatus
    message: str
    objective: float
    bound: float
    mip_gap: float
    seconds: float  # wall time inside HiGHS run(), both runs if a second one was needed
    col_value: np.ndarray | None  # None without a feasible solution


class HighsInstance:
    """One highspy.Highs with the compiled model; not safe to share between threads."""

    def __init__(self, milp: ParametricMilp, options: SolverOptions) -> None:
        self._milp = milp
        self._h = _quiet_highs()
        for name, value in options.highs_options().items():
            self._h.setOptionValue(name, value)
        self._loaded: MilpNumbers | None = None
        self._nz_col = np.repeat(np.arange(milp.n_col), np.diff(milp.a_start))
        self._cols = np.arange(milp.n_col, dtype=np.int32)
        self.repasses = 0  # how often the whole model was passed (first load included)

    def load(self, nums: MilpNumbers) -> None:
        """Make HiGHS hold `nums`; on failure the next load passes the whole model again."""
        if not (
            np.isfinite(nums.cost).all()
            and np.isfinite(nums.values).all()
            and np.isfinite(nums.offset)
        ):
            raise ValueError("scenario data gives a non-finite cost or coefficient")
        if any(
            np.isnan(a).any()
            for a in (nums.col_lower, nums.col_upper, nums.row_lower, nums.row_upper)
        ):
            raise ValueError("scenario data gives a NaN bound")
        old = self._loaded
        self._loaded = None
        changed = nums.values.size if old is None else np.count_nonzero(old.values != nums.values)
        try:
            if old is None or changed > _REPASS_SHARE * nums.values.size:
                self._pass(nums)
            else:
                self._update(old, nums)
        except Exception:
            self._h.clearModel()
            raise
        self._loaded = nums

    def _pass(self, nums: MilpNumbers) -> None:
        milp = self._milp
        lp = highspy.HighsLp()
        lp.num_col_ = milp.n_col
        lp.num_row_ = milp.n_row
        lp.col_cost_ = nums.cost
        lp.col_lower_ = nums.col_lower
        lp.col_upper_ = nums.col_upper
        lp.row_lower_ = nums.row_lower
        lp.row_upper_ = nums.row_upper
        lp.offset_ = nums.offset
        lp.sense_ = highspy.ObjSense.kMaximize if milp.maximize else highspy.ObjSense.kMinimize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = milp.n_col
        lp.a_matrix_.num_row_ = milp.n_row
        lp.a_matrix_.start_ = milp.a_start
        lp.a_matrix_.index_ = milp.a_index
        lp.a_matrix_.value_ = nums.values
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[int(i)] for i in milp.integer]
        _check(self._h.passModel(lp), "passModel")
        self.repasses += 1

    def _update(self, old: MilpNumbers, new: MilpNumbers) -> None:
        h = self._h
        if np.any(old.cost != new.cost):
            _check(h.changeColsCost(self._cols.size, self._cols, new.cost), "changeColsCost")
        cols = np.flatnonzero((old.col_lower != new.col_lower) | (old.col_upper != new.col_upper))
        if cols.size:
            idx = cols.astype(np.int32)
            _check(
                h.changeColsBounds(idx.size, idx, new.col_lower[cols], new.col_upper[cols]),
                "changeColsBounds",
            )
        rows = np.flatnonzero((old.row_lower != new.row_lower) | (old.row_upper != new.row_upper))
        if rows.size:
            idx = rows.astype(np.int32)
            # highspy's stub omits the vectorised changeRowsBounds that its runtime provides.
            status = h.changeRowsBounds(idx.size, idx, new.row_lower[rows], new.row_upper[rows])  # type: ignore[attr-defined]
            _check(status, "changeRowsBounds")
        # highspy has no vectorised changeCoeff: loop over plain Python numbers, which is cheapest.
        nz = np.flatnonzero(old.values != new.values)
        triples = zip(
            self._milp.a_index[nz].tolist(),
            self._nz_col[nz].tolist(),
            new.values[nz].tolist(),
            strict=True,
        )
        error = highspy.HighsStatus.kError
        for row, col, value in triples:
            if h.changeCoeff(row, col, value) == error:
                raise RuntimeError("HiGHS changeCoeff failed")
        if old.offset != new.offset:
            _check(h.changeObjectiveOffset(new.offset), "changeObjectiveOffset")

    def run(
        self, start_cols: np.ndarray | None = None, start_values: np.ndarray | None = None
    ) -> RunOutcome:
        """Solve what is loaded, offering a (partial) start; HiGHS drops a start it cannot complete."""
        if self._loaded is None:
            raise RuntimeError("no scenario loaded")
        h = self._h
        if start_cols is not None and start_values is not None and start_cols.size:
            h.setSolution(
                int(start_cols.size), start_cols.astype(np.int32), start_values.astype(float)
            )
        t0 = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - t0
        model_status = h.getModelStatus()
        if model_status == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            status, message, extra = self._feasibility_only()
            return RunOutcome(status, message, np.nan, np.nan, np.nan, seconds + extra, None)
        info = h.getInfo()
        has_solution = info.primal_solution_status == int(
            highspy.SolutionStatus.kSolutionStatusFeasible
        )
        status, message = classify(model_status, has_solution)
        if not status.has_solution:
            return RunOutcome(status, message, np.nan, np.nan, np.nan, seconds, None)
        objective = float(info.objective_function_value)
        if self._milp.integer.any():
            bound, gap = float(info.mip_dual_bound), float(info.mip_gap)
        else:
            bound, gap = objective, 0.0
        col = np.asarray(h.getSolution().col_value, dtype=float)
        return RunOutcome(status, message, objective, bound, gap, seconds, col)

    def _feasibility_only(self) -> tuple[SolveStatus, str, float]:
        """Tell infeasible from unbounded: a zero objective is bounded, so only feasibility remains."""
        assert self._loaded is not None
        h = self._h
        zeros = np.zeros(self._cols.size)
        _check(h.changeColsCost(self._cols.size, self._cols, zeros), "changeColsCost")
        t0 = time.perf_counter()
        try:
            h.run()
            feasible = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        finally:
            _check(
                h.changeColsCost(self._cols.size, self._cols, self._loaded.cost), "changeColsCost"
            )
        seconds = time.perf_counter() - t0
        found = highspy.HighsModelStatus
        status, message = classify(
            found.kUnbounded if feasible else found.kInfeasible, has_solution=False
        )
        return status, message, seconds


def _check(status: highspy.HighsStatus, call: str) -> None:
    if status == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS {call} failed")


_STDOUT_LOCK = threading.Lock()


def _quiet_highs() -> highspy.Highs:
    """A Highs instance without its banner ("Running HiGHS ..."), which the constructor writes
    to file descriptor 1 before any option can be set: into job output and CSV on stdout.
    A plain descriptor swap, no pipe: nothing to drain, so no deadlock (Pyomo #3456)."""
    with _STDOUT_LOCK:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            return highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
