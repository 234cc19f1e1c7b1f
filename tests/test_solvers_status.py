"""SolveStatus is a stable contract; HiGHS statuses map onto it; options are checked."""

from __future__ import annotations

import highspy
import pytest

from solvers import SolverOptions, SolveStatus, classify

HMS = highspy.HighsModelStatus


def test_status_strings_are_the_published_values() -> None:
    assert [s.value for s in SolveStatus] == [
        "optimal",
        "time_limit",
        "infeasible",
        "unbounded",
        "error",
    ]
    assert SolveStatus("time_limit") is SolveStatus.TIME_LIMIT
    assert [s for s in SolveStatus if s.has_solution] == [
        SolveStatus.OPTIMAL,
        SolveStatus.TIME_LIMIT,
    ]


@pytest.mark.parametrize(
    ("highs", "has_solution", "expected"),
    [
        (HMS.kOptimal, True, SolveStatus.OPTIMAL),
        (HMS.kInfeasible, False, SolveStatus.INFEASIBLE),
        (HMS.kUnbounded, False, SolveStatus.UNBOUNDED),
        (HMS.kTimeLimit, True, SolveStatus.TIME_LIMIT),
        (HMS.kTimeLimit, False, SolveStatus.ERROR),
        (HMS.kIterationLimit, True, SolveStatus.TIME_LIMIT),
        (HMS.kInterrupt, False, SolveStatus.ERROR),
        (HMS.kSolveError, False, SolveStatus.ERROR),
        (HMS.kModelError, False, SolveStatus.ERROR),
        (HMS.kUnknown, True, SolveStatus.ERROR),
    ],
)
def test_highs_statuses_map_to_solve_statuses(
    highs: highspy.HighsModelStatus, has_solution: bool, expected: SolveStatus
) -> None:
    status, message = classify(highs, has_solution)
    assert status is expected
    assert (message == "") == (expected is SolveStatus.OPTIMAL)


def test_time_limit_without_a_solution_says_so() -> None:
    _, message = classify(HMS.kTimeLimit, False)
    assert "before finding a feasible solution" in message


def test_solver_options_default_to_one_thread_and_quiet_highs() -> None:
    opts = SolverOptions().highs_options()
    assert opts["threads"] == 1
    assert opts["output_flag"] is False
    assert opts["time_limit"] == 10.0
    assert opts["mip_rel_gap"] == 1e-4


@pytest.mark.parametrize(
    "bad", [{"time_limit": 0.0}, {"mip_gap": -1e-3}, {"mip_gap": 1.0}, {"threads": 0}]
)
def test_solver_options_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SolverOptions(**bad)  # type: ignore[arg-type]
