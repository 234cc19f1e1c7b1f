"""Ray start-up: embedded on this machine by default, or a connection to a running cluster.

Embedded Ray binds to loopback and runs without token authentication: it is a private
instance of this process, and a token file left in the home directory must not decide whether
a run works. A cluster address (`--address`, or `EDT_ADDRESS` / `RAY_ADDRESS`, read by
api.Settings) is used as given, with the cluster's own authentication settings.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import ray


@dataclass(frozen=True)
class RayInfo:
    address: str
    embedded: bool
    cpus: int


def connect(address: str | None = None, num_cpus: int | None = None) -> RayInfo:
    """Initialise Ray once per process and report what we are running on."""
    if not ray.is_initialized():
        if not sys.stdout.isatty():
            # Ray colours the lines it relays (e.g. "(raylet) ..."): not in log files.
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # address="local": always a new private instance, never a cluster that `ray start`
            # left in /tmp/ray/ray_current_cluster.
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
            )
    ctx = ray.get_runtime_context()
    return RayInfo(
        address=ctx.gcs_address,
        embedded=not address,
        cpus=int(ray.cluster_resources().get("CPU", 1)),
    )


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
