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


def test_solver_options_reach_highs_with_one_thread_and_quiet_output() -> None:
    opts = SolverOptions(time_limit=7.5, mip_gap=2e-3).highs_options()
    assert opts["threads"] == 1
    assert opts["output_flag"] is False
    assert opts["log_to_console"] is False
    assert opts["time_limit"] == 7.5
    assert opts["mip_rel_gap"] == 2e-3


def test_a_job_file_sets_the_time_limit_and_gap_and_no_other_solver_knob() -> None:
    from jobs.spec import JobSpec

    job = {
        "name": "x",
        "model": "methanol_ammonia",
        "mode": "optimize",
        "scenarios": {"kind": "list", "scenarios": [{"name": "base"}]},
    }
    assert JobSpec.model_validate(job).solver.highs_options()["time_limit"] == 30.0
    spec = JobSpec.model_validate({**job, "solver": {"time_limit": 5, "mip_gap": 0.01}})
    assert spec.solver.highs_options()["time_limit"] == 5.0
    assert spec.solver.highs_options()["mip_rel_gap"] == 0.01
    with pytest.raises(ValueError, match="threads"):
        JobSpec.model_validate({**job, "solver": {"threads": 4}})


@pytest.mark.parametrize(
    "bad", [{"time_limit": 0.0}, {"mip_gap": -1e-3}, {"mip_gap": 1.0}, {"time_limit": float("inf")}]
)
def test_solver_options_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SolverOptions(**bad)  # type: ignore[arg-type]
