"""Solve statuses and solver options, stable across HiGHS versions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import highspy


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


@dataclass(frozen=True)
class SolverOptions:
    """Per-job solver settings. `threads` stays 1: HiGHS's scheduler is shared per process."""

    time_limit: float = 10.0
    mip_gap: float = 1e-4
    threads: int = 1
    warm_start: bool = True
    presolve: bool = True

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise ValueError(f"time_limit must be > 0, got {self.time_limit}")
        if not 0 <= self.mip_gap < 1:
            raise ValueError(f"mip_gap must be in [0, 1), got {self.mip_gap}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def highs_options(self) -> dict[str, bool | int | float | str]:
        return {
            "output_flag": False,
            "log_to_console": False,
            "threads": self.threads,
            "time_limit": float(self.time_limit),
            "mip_rel_gap": float(self.mip_gap),
            "presolve": "on" if self.presolve else "off",
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
