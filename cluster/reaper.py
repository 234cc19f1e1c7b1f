"""Cleans up after an embedded run whose process was killed (SIGKILL, OOM killer).

Ray's head processes share the fate of the process that started them, but two of their
children (ray::DashboardAgent, ray::RuntimeEnvAgent) outlive a killed driver, and the job's
registry row would keep saying `running`. So an embedded run starts this small watcher in its
own session: it keeps a list of the run's descendant processes and, when the run dies without
saying goodbye on its stdin, kills what is left of them and marks the job `interrupted`.

    python -m cluster.reaper PID        # then, on stdin: "job ID REGISTRY_URL", "bye"
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`: pid -> start time (to never kill a reused pid)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
            starts[int(entry)] = st[1]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


def _kill_all(seen: dict[int, int]) -> None:
    for pid, start in seen.items():
        if pid == os.getpid():
            continue  # the watcher is a child of the run too
        st = _stat(pid)
        if st is not None and st[1] == start:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)


def _interrupt(job_id: str, registry_url: str, pid: int) -> None:
    from jobs.registry import Registry
    from jobs.status import JobStatus

    registry = Registry(registry_url)
    try:
        record = registry.get(job_id)
        if not record.status.is_terminal() and record.status is not JobStatus.INTERRUPTED:
            registry.set_status(
                job_id,
                JobStatus.INTERRUPTED,
                error=f"the embedded run (pid {pid}) was killed; resume with: edt resume {job_id}",
            )
    finally:
        registry.close()


def main(argv: list[str]) -> int:
    parent = int(argv[1])
    seen: dict[int, int] = {}
    job: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):  # the run starts processes for a while: keep looking
            seen.update(descendants(parent))

    threading.Thread(target=watch, daemon=True).start()
    for line in sys.stdin:
        words = line.rstrip("\n").split(" ", 2)
        if words[:1] == ["bye"]:
            return 0
        if words[:1] == ["job"] and len(words) == 3:
            job = words[1:]
    done.set()  # stdin closed without goodbye: the run died
    seen.update(descendants(parent))
    _kill_all(seen)
    if job:
        _interrupt(job[0], job[1], parent)
    return 0


class Reaper:
    """The run's side of the watcher."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cluster.reaper", str(os.getpid())],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # not killed with the run's process group
        )

    def _say(self, line: str) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError):  # the watcher is gone
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()

    def watch_job(self, job_id: str, registry_url: str) -> None:
        self._say(f"job {job_id} {registry_url}")

    def bye(self) -> None:
        """The run ends normally (Ray already shut down): the watcher leaves everything."""
        self._say("bye")
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
