"""Solve statuses and solver options, stable across HiGHS versions."""

from __future__ import annotations

from enum import StrEnum

import highspy
from pydantic import BaseModel, ConfigDict, Field


class SolveStatus(StrEnum):
    """Outcome of one scenario's MILP. The string values are a stable contract (result tables).

    A solve stopped by the time limit is `time_limit` only if it has a feasible solution; with
    none it is `error` (there is no plan to report), and the result's message says so.
    """

    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)


class SolverOptions(BaseModel):
    """MILP settings for optimize mode (HiGHS, one thread per solver instance)."""

    # The one definition: a job file's `solver:` block validates into this very class.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    time_limit: float = Field(default=30.0, gt=0, description="seconds per scenario solve")
    mip_gap: float = Field(default=1e-4, ge=0, lt=1, description="relative MIP gap")

    def highs_options(self) -> dict[str, bool | int | float | str]:
        # threads stays 1: HiGHS's scheduler is shared by every instance of a process.
        return {
            "output_flag": False,
            "log_to_console": False,
            "threads": 1,
            "time_limit": float(self.time_limit),
            "mip_rel_gap": float(self.mip_gap),
        }


_LIMITS = {
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kIterationLimit,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kInterrupt,
    highspy.HighsModelStatus.kObjectiveBound,
    highspy.HighsModelStatus.kObjectiveTarget,
    highspy.HighsModelStatus.kMemoryLimit,
}


def classify(model_status: highspy.HighsModelStatus, has_solution: bool) -> tuple[SolveStatus, str]:
    """Map HiGHS's model status to a SolveStatus and a message (empty when optimal).

    `kUnboundedOrInfeasible` is not decided here: the caller resolves it with a second solve.
    """
    name = str(model_status).rsplit(".", 1)[-1]
    if model_status == highspy.HighsModelStatus.kOptimal:
        return SolveStatus.OPTIMAL, ""
    if model_status == highspy.HighsModelStatus.kInfeasible:
        return SolveStatus.INFEASIBLE, "the scenario's constraints cannot all be met"
    if model_status == highspy.HighsModelStatus.kUnbounded:
        return (
            SolveStatus.UNBOUNDED,
            "the objective is unbounded (e.g. unlimited buy-to-sell arbitrage)",
        )
    if model_status in _LIMITS:
        if has_solution:
            return SolveStatus.TIME_LIMIT, f"stopped early ({name}) with a feasible solution"
        return SolveStatus.ERROR, f"stopped ({name}) before finding a feasible solution"
    return SolveStatus.ERROR, f"HiGHS ended with model status {name}"
