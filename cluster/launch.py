"""A job's supervisor on Ray: one named actor per job, which outlives the process that started it.

In the pattern of Ray's own job manager (its JobSupervisor): the actor is named after the job
(`edt-job-<id>` in namespace `edt`), reserves no CPU, and is restarted by Ray when its process
dies (`max_restarts=-1`); every start, first or restart, runs the job from the registry, so a
restarted supervisor recomputes only the chunks with no committed part. On a cluster
(`--address`) it is detached: the submitting process is never needed for the job to finish.
Embedded, the actor belongs to the process that started Ray and stops with it; the job is then
`interrupted` and resumable.

A SQLite registry is a file on one host, so with SQLite the supervisor is pinned to the node
of the process that starts it (which must be a node of the cluster).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.liveness import runner_alive
from cluster.logs import configure_logging
from cluster.pool import forwarded_env
from cluster.runtime import connect
from cluster.supervisor import JobRunner, default_chunk_size
from jobs.faults import one_line
from jobs.registry import JobBusy, JobRecord, Registry
from jobs.spec import PreparedJob
from jobs.status import JobStatus
from jobs.storage import ResultStore

__all__ = [
    "NAMESPACE",
    "actor_name",
    "check_resumable",
    "resume_job",
    "start_supervisor",
    "stop_supervisor",
    "submit_job",
    "supervisor_alive",
]

NAMESPACE = "edt"
_OWNED: dict[str, Any] = {}
log = logging.getLogger("edt.launch")


def actor_name(job_id: str) -> str:
    return f"edt-job-{job_id}"


class JobSupervisor:
    """Runs one job in a thread (so that `state` answers while it runs), then exits."""

    def __init__(self, job_id: str, registry_url: str, workers: int | None) -> None:
        configure_logging()
        self.job_id = job_id
        self.outcome: str | None = None
        self.error: str | None = None
        incarnation = ray.get_runtime_context().get_actor_id() or ""
        self._thread = threading.Thread(
            target=self._run,
            args=(registry_url, workers, incarnation[-16:]),
            name=f"supervisor-{job_id}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, registry_url: str, workers: int | None, incarnation: str) -> None:
        try:
            registry = Registry(registry_url)
            record = registry.get(self.job_id)
            store = ResultStore(record.storage or "")
            runner = JobRunner(registry, store, workers=workers, incarnation=incarnation)
            self.outcome = runner.run(self.job_id).status.value
        except JobBusy as exc:
            self.outcome, self.error = "busy", one_line(exc)
            log.warning("job %s: %s", self.job_id, self.error)
        except Exception as exc:
            self.outcome, self.error = "error", one_line(exc)
            log.error("job %s: supervisor stopped: %s", self.job_id, self.error)
            self._interrupt(registry_url, f"its supervisor stopped: {self.error}")
        finally:
            # An intentional exit: Ray does not restart an actor that ends itself.
            ray.get_runtime_context().current_actor.__ray_terminate__.remote()

    def _interrupt(self, registry_url: str, reason: str) -> None:
        """Best effort: a job whose supervisor gave up is resumable, never left as it was."""
        try:
            registry = Registry(registry_url)
            if not registry.get(self.job_id).status.is_terminal():
                registry.set_status(self.job_id, JobStatus.INTERRUPTED, error=reason)
        except Exception as exc:  # the registry itself is what failed: liveness shows it
            log.error("job %s: could not mark it interrupted: %s", self.job_id, one_line(exc))

    def state(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "running": self._thread.is_alive(),
            "outcome": self.outcome,
            "error": self.error,
            "pid": os.getpid(),
        }


RemoteJobSupervisor = ray.remote(JobSupervisor)


def submit_job(
    registry: Registry,
    store: ResultStore,
    job: PreparedJob,
    *,
    chunk_size: int | None = None,
    tenant: str = "default",
    workers: int | None = None,
) -> JobRecord:
    """Register a queued job (with its storage URL) and write job.json; starts nothing.

    Without `chunk_size` (and none in the spec) chunks are sized for `workers` actors, or for
    one per CPU of the connected Ray cluster."""
    size = chunk_size or job.spec.chunk_size
    if size is None:
        cpus = workers if workers is not None else connect().cpus
        size = default_chunk_size(job, max(1, cpus))
    runner = JobRunner(registry, store)
    return runner.submit(job, chunk_size=size, tenant=tenant)


def _is_sqlite(registry_url: str) -> bool:
    return registry_url.split(":", 1)[0].split("+", 1)[0] == "sqlite"


def start_supervisor(
    job_id: str,
    registry_url: str,
    *,
    address: str | None = None,
    workers: int | None = None,
) -> None:
    """Start the job's supervisor actor (connecting to Ray if needed); a job whose
    supervisor is already alive is left to it."""
    info = connect(address)
    options: dict[str, Any] = {
        "name": actor_name(job_id),
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_restarts": -1,
        # `state` answers or not; retrying it (and the actor's own exit) would only add noise.
        "max_task_retries": 0,
        "get_if_exists": True,
    }
    if not info.embedded:
        options["lifetime"] = "detached"
    if _is_sqlite(registry_url):
        node = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    env = forwarded_env()
    if env:
        options["runtime_env"] = {"env_vars": env}
    handle = RemoteJobSupervisor.options(**options).remote(job_id, registry_url, workers)
    if info.embedded:
        # Ray collects a non-detached actor once no handle to it is left, name or not.
        _OWNED[job_id] = handle


def _handle(job_id: str) -> Any | None:
    try:
        return ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
    except ValueError:
        return None


def supervisor_alive(job_id: str, timeout: float = 30.0) -> bool:
    """The job's supervisor actor exists and its run goes on (Ray must be connected)."""
    handle = _handle(job_id)
    if handle is None:
        return False
    try:
        return bool(ray.get(handle.state.remote(), timeout=timeout)["running"])
    except Exception:  # gone between the lookup and the call, or never answering
        return False


def stop_supervisor(job_id: str) -> None:
    """Kill the job's supervisor actor for good (no restart); its job stays as recorded."""
    handle = _handle(job_id)
    if handle is not None:
        ray.kill(handle, no_restart=True)


def check_resumable(registry: Registry, job_id: str) -> JobRecord:
    """The job, if it may be resumed: ValueError for a finished job, JobBusy while a
    supervisor's heartbeat says it runs (checked without Ray: the registry tells)."""
    record = registry.get(job_id)
    if record.status.is_terminal():
        raise ValueError(
            f"job {job_id} is {record.status.value}; only unfinished jobs can be resumed"
        )
    busy = runner_alive(record) if record.status is JobStatus.RUNNING else None
    if busy:
        raise JobBusy(f"job {job_id} is being run by {busy}; nothing to resume")
    return record


def resume_job(
    registry: Registry,
    job_id: str,
    *,
    address: str | None = None,
    workers: int | None = None,
) -> JobRecord:
    """Start a new supervisor for an interrupted job (or a running one whose supervisor is
    gone); the refusals of `check_resumable`, and JobBusy while its supervisor actor lives."""
    record = check_resumable(registry, job_id)
    connect(address)
    if supervisor_alive(job_id):
        raise JobBusy(f"job {job_id} is being run by its supervisor; nothing to resume")
    start_supervisor(job_id, registry.url, address=address, workers=workers)
    return record
