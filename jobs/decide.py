"""Decide mode: choose one build schedule for all scenarios, then report how good it is.

    doc = decide(job, sequential(DecisionEvaluator(job)))     # or a Ray runner (cluster/)

The search runs as rounds of tasks (`jobs.decide_tasks`) handed to a runner that may spread
them over workers. Every round's task list depends only on the spec (never on which task
finished first or how many workers there are), so the decision is the same on any pool.

Methods (`decide.method`, `auto` picks the first that applies):
- `enumerate` (up to `max_candidates` schedules): the never-build schedule is known without
  solving (NPV 0), the mean-value schedule is evaluated first as the incumbent; the other
  schedules are evaluated block by block, and after each block a schedule whose optimistic
  objective (scenarios not yet evaluated at their wait-and-see bound) falls below the
  incumbent is pruned: it cannot win.
- `hedging` (risk-neutral only): progressive hedging over the scenario blocks; the schedules
  the scenarios agree on at the end are evaluated exactly and the best is kept.
- `extensive` (small instances, or risk-averse with many schedules): one MILP of all scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edt_compute import decision as dm
from edt_compute.risk import json_ready
from jobs.decide_tasks import DecisionEvaluator, Task, mean_value_schedule
from jobs.spec import PreparedJob

Runner = Callable[[list[Task]], list[dict[str, Any]]]
_ROUND_TASKS = 8  # enumeration: tasks per round at least (when few schedules are left)


def sequential(ev: DecisionEvaluator) -> Runner:
    return lambda tasks: [ev.run(t) for t in tasks]


@dataclass
class Training:
    blocks: list[tuple[int, int]]
    ws: np.ndarray  # wait-and-see objective per scenario
    bound: np.ndarray  # its MIP dual bound (>= any fixed schedule's objective)
    none: np.ndarray  # objective with nothing built
    ws_builds: np.ndarray  # (N, P) perfect-foresight schedule
    errors: list[str | None]
    sums: dict[str, Any]
    count: int

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)


def _blocks(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def _training(job: PreparedJob, run: Runner) -> Training:
    blocks = _blocks(job.total, job.decide.block_size)
    parts = run([{"kind": "base", "stream": "train", "start": a, "stop": b} for a, b in blocks])
    sums: dict[str, Any] = {}
    for part in parts:
        for k, v in part["sums"].items():
            sums[k] = sums[k] + v if k in sums else v
    return Training(
        blocks,
        np.concatenate([p["ws"] for p in parts]),
        np.concatenate([p["bound"] for p in parts]),
        np.concatenate([p["none"] for p in parts]),
        np.concatenate([p["ws_builds"] for p in parts]),
        [e for p in parts for e in p["error"]],
        sums,
        sum(int(p["count"]) for p in parts),
    )


class Search:
    """Schedule evaluations on the training scenarios: NPV per (valid) scenario."""

    def __init__(self, job: PreparedJob, run: Runner, tr: Training) -> None:
        self.job, self.run, self.tr = job, run, tr
        self.ok = tr.ok
        self.w, self.alpha = job.decide.risk_weight, job.decide.cvar_alpha
        self.solves = 0

    def objective(self, npv: np.ndarray) -> float:
        return dm.risk_objective(npv, self.w, self.alpha)

    def npv_of(self, objective: np.ndarray, blocks: list[tuple[int, int]]) -> np.ndarray:
        """Incremental NPV of the valid scenarios of `blocks` (in order)."""
        idx = np.concatenate([np.arange(a, b) for a, b in blocks])
        keep = self.ok[idx]
        return (objective - self.tr.none[idx])[keep]

    def evaluate(self, schedules: np.ndarray, stream: str = "train") -> np.ndarray:
        """(C, n_valid) NPVs of schedules on every training block (or the test stream's)."""
        if stream == "train":
            blocks = self.tr.blocks
        else:
            blocks = _blocks(self.job.decide.out_of_sample.samples, self.job.decide.block_size)
        tasks = [
            {"kind": "eval", "stream": stream, "start": a, "stop": b, "schedules": [s.tolist()]}
            for s in schedules
            for a, b in blocks
        ]
        out = self.run(tasks)
        self.solves += sum(
            int(np.isfinite(o["objective"]).sum() + np.isneginf(o["objective"]).sum()) for o in out
        )
        rows = []
        for c in range(len(schedules)):
            obj = np.concatenate(
                [out[c * len(blocks) + k]["objective"][0] for k in range(len(blocks))]
            )
            rows.append(obj)
        if stream != "train":
            return np.array(rows)
        return np.array([self.npv_of(r, blocks) for r in rows])


def _describe(projects: list[str], schedule: np.ndarray) -> dict[str, int]:
    return {p: int(b) for p, b in zip(projects, schedule, strict=True)}


def enumerate_schedules(
    search: Search, cands: np.ndarray, eev_schedule: np.ndarray, eev_npv: np.ndarray
) -> tuple[int, np.ndarray, list[dict[str, Any]], dict[str, int]]:
    """Index of the best of `cands` (never-all first) and its NPVs, one entry per candidate,
    pruning counts."""
    tr, blocks = search.tr, search.tr.blocks
    n_valid = int(search.ok.sum())
    ub = (tr.bound - tr.none)[search.ok]
    values: dict[int, np.ndarray] = {0: np.zeros(n_valid)}
    eev_at = int(np.flatnonzero((cands == eev_schedule).all(axis=1))[0])
    values[eev_at] = eev_npv
    best_known = max(search.objective(v) for v in values.values())
    alive = [c for c in range(len(cands)) if c not in values]
    partial: dict[int, list[np.ndarray]] = {c: [] for c in alive}
    pruned: dict[int, str] = {}
    done_valid, k = 0, 0
    while alive and k < len(blocks):
        # Enough tasks per round to keep a pool busy once few schedules are left; the count
        # depends on the spec only (never on the workers), so the rounds are always the same.
        width = max(1, -(-_ROUND_TASKS // len(alive)))
        chunk = blocks[k : k + width]
        k += len(chunk)
        tasks = [
            {
                "kind": "eval",
                "stream": "train",
                "start": a,
                "stop": b,
                "schedules": [cands[c].tolist()],
            }
            for c in alive
            for a, b in chunk
        ]
        out = iter(search.run(tasks))
        n_new = sum(int(search.ok[a:b].sum()) for a, b in chunk)
        search.solves += n_new * len(alive)
        done_valid += n_new
        still = []
        for c in alive:
            for a, b in chunk:
                partial[c].append(search.npv_of(next(out)["objective"][0], [(a, b)]))
            seen = np.concatenate(partial[c])
            optimistic = search.objective(np.concatenate([seen, ub[done_valid:]]))
            tol = 1e-9 * max(1.0, abs(best_known))
            if done_valid < n_valid and optimistic < best_known - tol:
                pruned[c] = (
                    f"pruned after {done_valid} of {n_valid} scenarios: objective at most "
                    f"{optimistic:.6g} < incumbent {best_known:.6g}"
                )
            else:
                still.append(c)
        alive = still
    for c in alive:
        values[c] = np.concatenate(partial[c])
    scores = {c: search.objective(v) for c, v in values.items()}
    best = max(sorted(scores), key=lambda c: scores[c])
    entries = []
    for c in range(len(cands)):
        entry: dict[str, Any] = {"schedule": _describe(search.job.projects, cands[c])}
        if c in values:
            entry |= {"expected_npv": float(values[c].mean()), "objective": scores[c]}
            entry["status"] = "evaluated"
        else:
            entry |= {"status": "pruned", "reason": pruned[c]}
            entry["scenarios_evaluated"] = int(sum(len(x) for x in partial[c]))
        entries.append(entry)
    full = (len(cands) - 1) * n_valid  # never-all needs no solve
    spent = sum(len(v) for c, v in values.items() if c != 0) + sum(
        int(sum(len(x) for x in partial[c])) for c in pruned
    )
    return (
        best,
        values[best],
        entries,
        {"candidate_solves": spent, "candidate_solves_without_pruning": full},
    )


def hedge(search: Search) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Progressive hedging on the build indicators: candidate schedules and a trace."""
    job, tr = search.job, search.tr
    T = job.model.finance.horizon
    P = len(job.projects)
    ok = search.ok

    def indicators(builds: np.ndarray) -> np.ndarray:
        x = np.zeros((len(builds), P, T))
        for p in range(P):
            rows = np.flatnonzero(builds[:, p] >= 0)
            x[rows, p, builds[rows, p]] = 1.0
        return x

    ws_npv = (tr.ws - tr.none)[ok]
    rho = job.decide.hedging.rho or max(1e-6, 0.5 * float(np.mean(np.abs(ws_npv))))
    x = indicators(tr.ws_builds)
    x[~ok] = 0.0
    xbar = x[ok].mean(axis=0)
    w = rho * (x - xbar)
    builds = tr.ws_builds.copy()
    iterations, converged = 0, False
    for it in range(job.decide.hedging.max_iterations):
        iterations = it + 1
        tasks = [
            {
                "kind": "hedge",
                "stream": "train",
                "start": a,
                "stop": b,
                "w": w[a:b].tolist(),
                "xbar": xbar.tolist(),
                "rho": rho,
                "skip": [int(i) for i in np.flatnonzero(~ok[a:b]) + a],
            }
            for a, b in tr.blocks
        ]
        out = search.run(tasks)
        search.solves += int(ok.sum())
        builds = np.concatenate([o["builds"] for o in out])
        x = indicators(builds)
        x[~ok] = 0.0
        xbar = x[ok].mean(axis=0)
        w[ok] += rho * (x[ok] - xbar)
        if len({tuple(r) for r in builds[ok].tolist()}) == 1:
            converged = True
            break
    # What the scenarios propose at the end, most frequent first (at most 8), evaluated exactly.
    rows, counts = np.unique(builds[ok], axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:8]
    proposals = [np.asarray(rows[i], dtype=np.int64) for i in order]
    return proposals, {"iterations": iterations, "converged": converged, "rho": rho}


def _extensive(search: Search, ev: DecisionEvaluator) -> tuple[np.ndarray, dict[str, Any]]:
    from edt_compute.compiled import compile_model
    from solvers.extensive import solve_extensive

    ids = np.flatnonzero(search.ok)
    inputs = ev.inputs("train", ids)
    cm = compile_model(ev.job.model, len(ids), inputs.scalars, inputs.series)
    res = solve_extensive(
        ev.planner(),
        cm,
        range(len(ids)),
        ev.selected,
        search.tr.none[ids],
        risk_weight=search.w,
        alpha=search.alpha,
    )
    if not res.status.has_solution:
        raise RuntimeError(f"the extensive form has no solution: {res.message}")
    # A time limit may stop it with a schedule that is not proven best: say so, with its bound.
    report = {
        "status": res.status.value,
        "objective": res.objective,
        "bound": res.bound,
        "seconds": res.seconds,
    }
    return res.schedule[ev.selected], {"extensive": report}


def choose_method(job: PreparedJob, n_candidates: int) -> str:
    method = job.decide.method
    if method != "auto":
        return method
    if n_candidates <= job.decide.max_candidates:
        return "enumerate"
    return "hedging" if job.decide.risk_weight == 0 else "extensive"


def decide(job: PreparedJob, run: Runner, ev: DecisionEvaluator | None = None) -> dict[str, Any]:
    """The decision document (decision.json) of a decide-mode job."""
    ev = ev or DecisionEvaluator(job)
    opts = job.decide
    tr = _training(job, run)
    search = Search(job, run, tr)
    if tr.count == 0:
        raise RuntimeError("no scenario could be solved; see the scenario table's errors")
    windows = dm.build_windows(job.model, job.projects)
    n_cands = dm.schedule_count(windows)
    method = choose_method(job, n_cands)
    never = np.full(len(job.projects), -1, dtype=np.int64)
    eev_schedule = mean_value_schedule(ev, tr.sums, tr.count)
    eev_npv = (
        np.zeros(tr.count)
        if (eev_schedule == never).all()
        else search.evaluate(eev_schedule[None])[0]
    )
    extra: dict[str, Any] = {}
    if method == "enumerate":
        cands = dm.schedules(windows)
        best, chosen_npv, entries, extra = enumerate_schedules(search, cands, eev_schedule, eev_npv)
        chosen = cands[best]
    else:
        if method == "hedging":  # risk-neutral: the spec refuses hedging with risk_weight > 0
            proposals, extra = hedge(search)
        else:
            proposal, extra = _extensive(search, ev)
            proposals = [proposal]
        known = {tuple(never.tolist()): np.zeros(tr.count), tuple(eev_schedule.tolist()): eev_npv}
        fresh = [p for p in proposals if tuple(p.tolist()) not in known]
        if fresh:
            for p, v in zip(fresh, search.evaluate(np.array(fresh)), strict=True):
                known[tuple(p.tolist())] = v
        keys = sorted(known)
        scores = {k: search.objective(known[k]) for k in keys}
        top = max(keys, key=lambda k: scores[k])
        chosen, chosen_npv = np.array(top, dtype=np.int64), known[top]
        entries = [
            {
                "schedule": _describe(job.projects, np.array(k)),
                "status": "evaluated",
                "expected_npv": float(known[k].mean()),
                "objective": scores[k],
            }
            for k in keys
        ]
    # Each scenario's perfect-foresight optimum is at least what any schedule evaluated on it
    # reached (never building included): with a MIP gap the free solve may stop below them.
    ws_npv = np.maximum.reduce(
        [(tr.ws - tr.none)[search.ok], np.zeros(tr.count), chosen_npv, eev_npv]
    )
    figs = dm.Figures(
        search.objective(ws_npv), search.objective(chosen_npv), search.objective(eev_npv)
    )
    doc: dict[str, Any] = {
        "schedule": _describe(job.projects, chosen),
        "objective": figs.recourse_value,
        "expected_npv": float(chosen_npv.mean()),
        "method": method,
        "risk_weight": opts.risk_weight,
        "cvar_alpha": opts.cvar_alpha,
        "scenarios": int(job.total),
        "scenarios_used": int(tr.count),
        "wait_and_see": figs.wait_and_see,
        # From the MIP dual bounds: no schedule, even with perfect foresight, does better.
        "wait_and_see_bound": search.objective((tr.bound - tr.none)[search.ok]),
        "recourse_value": figs.recourse_value,
        "eev": figs.eev,
        "evpi": figs.evpi,
        "vss": figs.vss,
        "mean_value_schedule": _describe(job.projects, eev_schedule),
        "build_right_probability": dict(
            zip(job.projects, dm.build_right_share(tr.ws_builds[search.ok]).tolist(), strict=True)
        ),
        "out_of_sample": _out_of_sample(search, chosen, chosen_npv),
        "candidates": entries,
        "candidate_count": n_cands,
        "solves": {"base": 2 * int(tr.count), "evaluation": search.solves, **extra},
    }
    return json_ready(doc)


def _out_of_sample(search: Search, chosen: np.ndarray, in_sample: np.ndarray) -> dict[str, Any]:
    oos = search.job.decide.out_of_sample
    if search.job.spec.scenarios.kind != "monte_carlo" or oos.samples == 0:
        iv = dm.mean_interval(in_sample, oos.confidence)
        return iv.as_dict() | {"in_sample": True}
    never = np.full_like(chosen, -1)
    obj = search.evaluate(np.array([never, chosen]), stream="test")
    npv = obj[1] - obj[0]
    good = np.isfinite(npv)
    iv = dm.mean_interval(npv[good], oos.confidence)
    # Scenarios the decision cannot operate (its plan infeasible where not building is
    # feasible) are counted apart: the interval is over the scenarios where it can.
    infeasible = int(np.sum(np.isneginf(obj[1]) & np.isfinite(obj[0])))
    return iv.as_dict() | {
        "in_sample": False,
        "failed": int((~good).sum()) - infeasible,
        "infeasible_under_decision": infeasible,
    }


def decision_line(doc: dict[str, Any]) -> dict[str, Any]:
    """The decision in a few figures, as summary.json carries it."""
    keys = ("schedule", "objective", "method", "recourse_value", "evpi", "vss")
    return {k: doc[k] for k in keys} | {"out_of_sample": doc["out_of_sample"]}
