"""Supervisor policy: one live supervisor per job (most cases need no Ray)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cluster.supervisor import JobRunner, runner_alive
from jobs.registry import JobBusy, Registry
from jobs.storage import ResultStore


def _registry(tmp_path: Path) -> tuple[Registry, str]:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    rec = reg.create_job(None, "j", {"chunk_size": 1, "name": "j"}, "h", 1, 1)
    return reg, rec.id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_job_with_a_live_runner_elsewhere_is_refused(tmp_path: Path) -> None:
    reg, job_id = _registry(tmp_path)
    reg.take_over(job_id, "other-host:4242:abcd", None)
    with pytest.raises(JobBusy, match="other-host:4242"):
        JobRunner(reg, ResultStore(str(tmp_path / "res"))).run(job_id)


def test_a_runner_is_dead_when_its_local_process_is_gone_or_its_heartbeat_is_stale(
    tmp_path: Path,
) -> None:
    reg, job_id = _registry(tmp_path)
    me = socket.gethostname()
    record = reg.take_over(job_id, f"{me}:{os.getpid()}:x", None)
    assert runner_alive(record) is not None  # this very process
    record = reg.take_over(job_id, f"{me}:{_dead_pid()}:y", record.runner)
    assert runner_alive(record) is None  # killed driver on this host: known dead at once
    record = reg.take_over(job_id, "far-away:1:z", record.runner)
    assert runner_alive(record) is not None
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert runner_alive(record, now=later) is None  # no heartbeat for minutes


def test_a_zombie_runner_on_this_host_is_dead(tmp_path: Path) -> None:
    from tests.support import wait_for

    reg, job_id = _registry(tmp_path)
    # A child that has exited but is not reaped yet: a zombie, as a killed supervisor stays
    # where PID 1 does not reap. It still answers kill(pid, 0).
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat")
        wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", what="zombie")
        os.kill(proc.pid, 0)  # exists for the kernel
        record = reg.take_over(job_id, f"{socket.gethostname()}:{proc.pid}:z", None)
        assert runner_alive(record) is None
    finally:
        proc.wait()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_supervisor_that_lost_its_job_leaves_the_status_to_the_new_owner(
    tmp_path: Path, gate: Path
) -> None:
    from jobs.spec import prepare_job
    from jobs.status import JobStatus
    from tests.support import wait_for

    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    job = prepare_job(
        {
            "name": "j",
            "model": "steel_minimill",
            "scenarios": {"kind": "list", "scenarios": [{"name": "a"}, {"name": "b"}]},
        }
    )
    runner = JobRunner(reg, ResultStore(str(tmp_path / "res")), workers=1)
    rec = runner.submit(job, chunk_size=1)
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(runner.run(rec.id))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    # Chunk 1 is held by the gate: the job is surely mid-way when another host takes it.
    wait_for(lambda: reg.committed_chunks(rec.id) == {0}, what="chunk 0 committed")
    reg.take_over(rec.id, "other-host:1:b", runner.runner_id)
    (gate / "open").touch()
    thread.join(timeout=300)
    assert len(outcome) == 1 and isinstance(outcome[0], JobBusy), outcome
    after = reg.get(rec.id)
    assert (
        after.status == JobStatus.RUNNING
        and after.runner == "other-host:1:b"
        and after.error is None
    )
