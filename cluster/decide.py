"""Decide mode on the actor pool: the search's task rounds spread over the chunk workers.

Results come back in task order whatever finished first, so the search (`jobs.decide`) sees
the same answers on one worker or many. A task that fails fails the round (and the job): a
decision search has no per-scenario fallback, and a rerun resumes from the job's start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from jobs.decide import Runner
from jobs.decide_tasks import Task

_PER_ACTOR = 2


def ray_runner(
    actors: list[Any],
    spec_hash: str,
    doc_ref: Any,
    milp_ref: Any,
    between: Callable[[], None] | None = None,
) -> Runner:
    """`between` runs before every round (the supervisor's cancel and ownership checks: it
    raises to end the search)."""

    def run(tasks: list[Task]) -> list[dict[str, Any]]:
        if between is not None:
            between()
        results: list[dict[str, Any] | None] = [None] * len(tasks)
        pending = list(range(len(tasks)))[::-1]
        in_flight: dict[Any, tuple[int, int]] = {}
        load = [0] * len(actors)
        while pending or in_flight:
            while pending and min(load) < _PER_ACTOR:
                a = load.index(min(load))
                i = pending.pop()
                ref = actors[a].decide.remote(spec_hash, doc_ref, milp_ref, tasks[i])
                in_flight[ref] = (i, a)
                load[a] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                i, a = in_flight.pop(ref)
                load[a] -= 1
                results[i] = ray.get(ref)
        return [r for r in results if r is not None]

    return run
