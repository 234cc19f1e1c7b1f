"""The scheduler and reconciler over a real registry, with a launcher that records what it
was asked to do (the Ray side is covered by tests/test_api_e2e.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.scheduler import Scheduler
from jobs.registry import JobBusy, JobRecord, Registry
from jobs.status import JobStatus
from tests.api_support import poll


@dataclass
class FakeLauncher:
    registry: Registry
    alive: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)  # run by someone else (e.g. `edt run`)
    started: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)

    def start_supervisor(self, job_id: str, registry_url: str, **_: Any) -> None:
        self.started.append(job_id)
        self.alive.add(job_id)

    def supervisor_alive(self, job_id: str) -> bool:
        return job_id in self.alive

    def resume_job(self, registry: Registry, job_id: str, **_: Any) -> JobRecord:
        if job_id in self.busy:
            raise JobBusy(job_id)
        record = registry.get(job_id)
        if record.status.is_terminal():
            raise ValueError(f"job {job_id} is {record.status.value}")
        self.resumed.append(job_id)
        self.alive.add(job_id)
        return registry.set_status(job_id, JobStatus.RUNNING)


def _job(reg: Registry, name: str, priority: int = 0) -> str:
    return reg.create_job(None, name, {"name": name}, "h", 10, 1, priority=priority).id


def test_queued_jobs_start_by_priority_then_age_up_to_the_running_limit(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    low_old, low_new, high = _job(reg, "a"), _job(reg, "b"), _job(reg, "c", priority=5)
    launcher = FakeLauncher(reg)
    sched = Scheduler(reg, launcher, max_running=2)
    assert sched.schedule() == [high, low_old]
    assert sched.schedule() == []  # two run: the third waits
    assert reg.get(low_new).status is JobStatus.QUEUED
    reg.set_status(high, JobStatus.SUCCEEDED)
    assert sched.schedule() == [low_new]
    assert launcher.started == [high, low_old, low_new]


def test_the_reconciler_resumes_lost_and_interrupted_jobs_within_the_budget(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    launcher = FakeLauncher(reg)
    lost, live, elsewhere, interrupted, worn_out, done = (
        _job(reg, n) for n in ("lost", "live", "elsewhere", "interrupted", "worn", "done")
    )
    for j in (lost, live, elsewhere):
        reg.set_status(j, JobStatus.RUNNING)
    launcher.alive.add(live)
    launcher.busy.add(elsewhere)
    reg.set_status(interrupted, JobStatus.INTERRUPTED)
    for _ in range(3):
        reg.set_status(worn_out, JobStatus.INTERRUPTED)  # interrupted three times
    reg.set_status(done, JobStatus.SUCCEEDED)
    sched = Scheduler(reg, launcher, resume_budget=2)
    assert sorted(sched.reconcile()) == sorted([lost, interrupted])
    assert reg.get(worn_out).status is JobStatus.INTERRUPTED  # over budget: a person decides
    assert reg.get(elsewhere).status is JobStatus.RUNNING and elsewhere not in launcher.resumed
    assert sched.reconcile() == []  # now all alive


def test_a_failing_launcher_never_stops_the_loop(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path}/r.db")
    job = _job(reg, "a")

    class Broken(FakeLauncher):
        def start_supervisor(self, job_id: str, registry_url: str, **_: Any) -> None:
            raise RuntimeError("ray is down")

    launcher = Broken(reg)
    sched = Scheduler(reg, launcher, interval=0.05, reconcile_every=0.05)
    sched.start()
    try:
        # Claimed but not started: the reconciler keeps trying it as a lost supervisor.
        poll(lambda: reg.get(job).status is JobStatus.RUNNING, timeout=10)
        poll(lambda: launcher.resumed == [job], timeout=10)
    finally:
        sched.stop()
