"""Task slots on the actor pool: which actor can take a task now, and which are restarting.

Each actor takes up to `per_actor` tasks at once (the next starts while the supervisor records
the last). An actor whose process died is `down` until a ping answers: Ray restarts it, but a
task sent meanwhile fails without having run, and would be mistaken for a crash of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ray

from cluster.chunk_queue import Work

_PING_EVERY = 0.5


class ActorSlots:
    def __init__(self, actors: list[Any], per_actor: int) -> None:
        self.actors = actors
        self.idle = list(range(len(actors))) * per_actor
        self.tasks: dict[Any, tuple[Work, int]] = {}
        self._pings: dict[Any, int] = {}
        self._ping_due: dict[int, float] = {}
        self.down: set[int] = set()
        self._all_down_since: float | None = None

    def __bool__(self) -> bool:
        """Tasks are in flight."""
        return bool(self.tasks)

    def free(self) -> list[int]:
        """Idle slots of actors that are up."""
        return [a for a in self.idle if a not in self.down]

    def busy(self) -> set[int]:
        return {a for _, a in self.tasks.values()}

    def sent(self, ref: Any, work: Work, actor: int) -> None:
        self.idle.remove(actor)
        self.tasks[ref] = (work, actor)

    def died(self, actor: int) -> None:
        """The actor's process died: keep it out until it answers again."""
        if actor not in self.down:
            self.down.add(actor)
            self._ping_due[actor] = time.monotonic()
            if len(self.down) == len(self.actors) and self._all_down_since is None:
                self._all_down_since = time.monotonic()

    def unavailable_for(self) -> float:
        """Seconds for which no actor has been up (0 while one is)."""
        since = self._all_down_since
        return 0.0 if since is None else time.monotonic() - since

    def wait(self, timeout: float) -> Iterator[tuple[Any, Work, int]]:
        """Finished tasks (ref, work, actor); answered pings bring their actors back."""
        now = time.monotonic()
        for a, due in list(self._ping_due.items()):
            if due <= now:
                del self._ping_due[a]
                self._pings[self.actors[a].pid.remote()] = a
        refs = [*self.tasks, *self._pings]
        if not refs:
            time.sleep(min(timeout, _PING_EVERY))  # only pings pending: their next round
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in self._pings:
                a = self._pings.pop(ref)
                try:
                    ray.get(ref)
                    self.down.discard(a)
                    self._all_down_since = None
                except Exception:  # still restarting: ask again shortly
                    self._ping_due[a] = time.monotonic() + _PING_EVERY
                continue
            work, a = self.tasks.pop(ref)
            self.idle.append(a)
            yield ref, work, a
