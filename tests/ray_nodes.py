"""A multi-node Ray cluster on this machine, for tests and the scaling benchmark.

Each node is a `ray start --block` with its own raylet and `--num-cpus 1`. When this process
may create network namespaces (root), every node but the head lives in its own namespace,
joined to the head by a veth pair, so that the nodes have distinct addresses (10.x.y.1 for the
head, 10.x.y.2.. for the others) as on a real cluster. Otherwise the nodes share loopback,
with distinct addresses (127.0.0.1, 127.0.0.2, ...). Ports are chosen free, never 6379 (Redis).
Everything started here is stopped by pid (its process tree), never by `ray stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster.reaper import descendants
from tests.support import free_port

BIN = Path(sys.executable).parent
RAY_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}
_COMMON = ["--block", "--num-cpus=1", "--disable-usage-stats"]


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def can_use_netns() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"edtprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "netns", "del", name)
        return True
    except (subprocess.CalledProcessError, FileNotFoundError):
        return False



@dataclass
class Node:
    ip: str
    proc: subprocess.Popen[bytes]
    netns: str | None = None
    log: Path | None = None

    def raylet_pid(self) -> int:
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
        raise RuntimeError(f"no raylet under node {self.ip}")

    def tree(self) -> set[int]:
        return {self.proc.pid, *descendants(self.proc.pid)}


def _kill_tree(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@dataclass
class RayNodes:
    """A head and worker nodes; `address` is the head's GCS address."""

    workdir: Path
    netns: bool = field(default_factory=can_use_netns)
    nodes: list[Node] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)
    _subnet: str = ""
    address: str = ""
    _owned: set[int] = field(default_factory=set)
    _pending_ns: str | None = None

    def __post_init__(self) -> None:
        self.tag = f"{os.getpid() % 10000}{random.randrange(100, 999)}"
        self._subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"

    @property
    def kind(self) -> str:
        return "network namespaces (veth)" if self.netns else "loopback, distinct node IPs"

    def _ip(self, i: int) -> str:
        return f"{self._subnet}.{i + 1}" if self.netns else f"127.0.0.{i + 1}"

    def _link(self, i: int) -> str | None:
        """Namespace of node i (>0), joined to the root namespace by a veth pair."""
        if not self.netns or i == 0:
            return None
        ns, host_end, ns_end = f"edt{self.tag}n{i}", f"e{self.tag}h{i}", f"e{self.tag}n{i}"
        _run("ip", "netns", "add", ns)
        self._namespaces.append(ns)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        self._links.append(host_end)
        _run("ip", "link", "set", ns_end, "netns", ns)
        # A /32 on each side and a host route: every node's link is separate, no subnet clash.
        _run("ip", "addr", "add", f"{self._ip(0)}/32", "dev", host_end)
        _run("ip", "link", "set", host_end, "up")
        _run("ip", "route", "add", f"{self._ip(i)}/32", "dev", host_end)
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{self._ip(i)}/32", "dev", ns_end],
            ["ip", "link", "set", ns_end, "up"],
            ["ip", "route", "add", f"{self._ip(0)}/32", "dev", ns_end],
            ["ip", "route", "add", "default", "via", self._ip(0), "dev", ns_end],
        ):
            _run("ip", "netns", "exec", ns, *cmd)
        return ns

    def _start(self, args: list[str], ns: str | None, ip: str) -> Node:
        log = self.workdir / f"ray-{ip}-{len(self.nodes)}.log"
        prefix = ["ip", "netns", "exec", ns] if ns else []
        proc = subprocess.Popen(
            [*prefix, str(BIN / "ray"), "start", *args, f"--node-ip-address={ip}", *_COMMON],
            start_new_session=True,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=RAY_ENV,
        )
        node = Node(ip, proc, ns, log)
        self.nodes.append(node)
        return node

    def start_head(self) -> str:
        ip = self._ip(0)
        # With namespaces the head's address lives on the first veth: create that link now.
        self._pending_ns = self._link(1)
        port = free_port(ip)
        self._start(["--head", f"--port={port}", "--include-dashboard=false"], None, ip)
        self.address = f"{ip}:{port}"
        self._wait_nodes(1)
        return self.address

    def add_worker(self) -> Node:
        i = len(self.nodes)
        ns = self._pending_ns if (self.netns and i == 1) else self._link(i)
        node = self._start([f"--address={self.address}"], ns, self._ip(i))
        self._wait_nodes(len(self.nodes))
        return node

    def alive_nodes(self) -> dict[str, str]:
        """Node id -> node IP of the nodes Ray counts as alive."""
        probe = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR');"
            "print(json.dumps({n['NodeID']: n['NodeManagerAddress'] for n in ray.nodes()"
            " if n['Alive']}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=RAY_ENV, timeout=120
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def _wait_nodes(self, n: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    raise RuntimeError(
                        f"ray node {node.ip} exited: {node.log and node.log.read_text()[-3000:]}"
                    )
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if len(self.alive_nodes()) >= n:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} ray nodes did not come up")
            time.sleep(1.0)  # polling interval

    def kill_raylet(self, node: Node) -> set[int]:
        """SIGKILL the node's raylet; returns the pids of the workers it had (which exit
        once their raylet is gone)."""
        raylet = node.raylet_pid()
        workers = set(descendants(raylet))
        self._owned |= node.tree()
        os.kill(raylet, signal.SIGKILL)
        return workers

    def kill_head(self) -> set[int]:
        """The head machine lost: every process of the head node SIGKILLed at once."""
        head = self.nodes[0]
        pids = head.tree()
        self._owned |= pids
        os.killpg(head.proc.pid, signal.SIGKILL)
        _kill_tree(pids)
        return pids

    @staticmethod
    def gone(pids: set[int]) -> bool:
        return not any(_alive(p) for p in pids)

    def stop(self) -> None:
        pids = set(self._owned)
        for node in self.nodes:
            pids |= node.tree()
        for node in self.nodes:
            with contextlib.suppress(OSError):
                os.killpg(node.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.gone(pids):
            time.sleep(0.2)  # polling interval
        _kill_tree(pids)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.proc.wait(timeout=10)
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for ns in self._namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
