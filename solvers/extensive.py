"""The extensive form of the two-stage investment decision: every scenario in one MILP.

Each scenario keeps its own copy of the planning MILP (dispatch adapts per scenario); the
build indicators of every copy are tied to the first copy's by equality rows
(nonanticipativity), so there is one build schedule. The objective is, with equally likely
scenarios and NPV_s = objective_s - base_s (base_s: scenario s's optimum with nothing built),

    (1 - w) mean_s NPV_s + w (eta - mean_s z_s / (1 - alpha)),   z_s >= eta - NPV_s, z_s >= 0

(Rockafellar-Uryasev: at the optimum the bracket is CVaR_alpha of the NPV, the mean of its
worst 1 - alpha share). The whole matrix is assembled with scipy.sparse and passed to HiGHS in
one call; it grows with the scenario count, so this is for small instances and for checking
enumeration and progressive hedging.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from edt_compute.compiled import CompiledModel
from solvers.highs_instance import _check, _quiet_highs
from solvers.planning import PlanningModel
from solvers.status import SolverOptions, SolveStatus, classify


@dataclass(frozen=True)
class ExtensiveResult:
    status: SolveStatus
    schedule: np.ndarray  # (P,) build period per project, -1 = never
    objective: float  # the risk objective in NPV units; NaN without a solution
    bound: float
    seconds: float
    message: str = ""


def solve_extensive(
    pm: PlanningModel,
    cm: CompiledModel,
    scenarios: Sequence[int],
    free: Sequence[int],
    base: np.ndarray,
    *,
    risk_weight: float = 0.0,
    alpha: float = 0.95,
    options: SolverOptions | None = None,
) -> ExtensiveResult:
    """Choose one schedule for the projects `free` (the others never built) over `scenarios`
    of `cm`, with `base[i]` the no-build optimum of scenarios[i]."""
    ids = [int(s) for s in scenarios]
    n = len(ids)
    if n == 0:
        raise ValueError("scenarios: give at least one")
    base = np.asarray(base, dtype=float)
    if base.shape != (n,):
        raise ValueError(f"base: expected shape ({n},), got {base.shape}")
    if not 0 <= risk_weight <= 1 or not 0 < alpha < 1:
        raise ValueError(
            f"risk_weight must be in [0, 1] and alpha in (0, 1): {risk_weight}, {alpha}"
        )
    milp = pm.milp
    build_cols = milp.columns["build"]
    nums = [pm.numbers(cm, s, free=free) for s in ids]
    nc, nr = milp.n_col, milp.n_row
    blocks = [sp.csc_matrix((u.values, milp.a_index, milp.a_start), shape=(nr, nc)) for u in nums]
    a = sp.block_diag(blocks, format="csr")
    flat = build_cols.ravel()
    # Nonanticipativity: copy s's build indicators equal copy 0's.
    na_rows = []
    for s in range(1, n):
        r = np.arange(flat.size)
        na_rows.append(
            sp.csr_matrix(
                (
                    np.r_[np.ones(flat.size), -np.ones(flat.size)],
                    (np.r_[r, r], np.r_[s * nc + flat, flat]),
                ),
                shape=(flat.size, n * nc),
            )
        )
    mean_w = (1.0 - risk_weight) / n
    cost = np.concatenate([mean_w * u.cost for u in nums])
    offset = mean_w * float(sum(u.offset - b for u, b in zip(nums, base, strict=True)))
    col_lo = np.concatenate([u.col_lower for u in nums])
    col_up = np.concatenate([u.col_upper for u in nums])
    row_lo = [np.concatenate([u.row_lower for u in nums]), np.zeros(flat.size * (n - 1))]
    row_up = [np.concatenate([u.row_upper for u in nums]), np.zeros(flat.size * (n - 1))]
    integer = np.tile(milp.integer, n)
    rows = [a, *na_rows]
    if risk_weight > 0:
        # Columns eta (free) and z_s >= 0; rows z_s - eta + cost_s x_s >= base_s - offset_s.
        width = n * nc
        rows = [sp.hstack([r, sp.csr_matrix((r.shape[0], 1 + n))]) for r in rows]
        cvar_rows = sp.hstack(
            [
                sp.block_diag([sp.csr_matrix(u.cost[None, :]) for u in nums]),
                -np.ones((n, 1)),
                sp.identity(n),
            ]
        )
        rows.append(cvar_rows)
        cost = np.r_[cost, risk_weight, -risk_weight / (n * (1 - alpha)) * np.ones(n)]
        col_lo = np.r_[col_lo, -np.inf, np.zeros(n)]
        col_up = np.r_[col_up, np.inf, np.full(n, np.inf)]
        row_lo.append(np.array([b - u.offset for u, b in zip(nums, base, strict=True)]))
        row_up.append(np.full(n, np.inf))
        integer = np.r_[integer, np.zeros(1 + n, dtype=bool)]
        assert width + 1 + n == cost.size
    matrix = sp.vstack(rows, format="csc")
    matrix.sort_indices()
    h = _quiet_highs()
    for name, value in (options or pm.options).highs_options().items():
        h.setOptionValue(name, value)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_, lp.offset_ = cost, offset
    lp.col_lower_, lp.col_upper_ = col_lo, col_up
    lp.row_lower_, lp.row_upper_ = np.concatenate(row_lo), np.concatenate(row_up)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(float)
    kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
    lp.integrality_ = [kinds[int(i)] for i in integer]
    _check(h.passModel(lp), "passModel")
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    info = h.getInfo()
    has = info.primal_solution_status == int(highspy.SolutionStatus.kSolutionStatusFeasible)
    status, message = classify(h.getModelStatus(), has)
    P = build_cols.shape[0]
    if not status.has_solution:
        nan = float("nan")
        return ExtensiveResult(status, np.full(P, -1, np.int64), nan, nan, seconds, message)
    col = np.asarray(h.getSolution().col_value)
    built = col[build_cols] > 0.5
    schedule = np.where(built.any(axis=1), built.argmax(axis=1), -1).astype(np.int64)
    return ExtensiveResult(
        status,
        schedule,
        float(info.objective_function_value),
        float(info.mip_dual_bound),
        seconds,
        message,
    )
