"""Shared helpers of the API tests: free ports, servers on loopback, tokens, a polled wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI

from api.auth import hash_token
from tests.support import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
# token -> (tenant, role); acme's submitter is stored hashed, as a team would.
TOKENS = {
    "acme-viewer": ("acme", "viewer"),
    "acme-submitter": ("acme", "submitter"),
    "acme-admin": ("acme", "admin"),
    "globex-submitter": ("globex", "submitter"),
}
HASHED = {"acme-submitter"}



def write_tokens(path: Path, tenants: dict[str, Any] | None = None) -> Path:
    tokens = {
        (hash_token(t) if t in HASHED else t): {"tenant": tenant, "role": role}
        for t, (tenant, role) in TOKENS.items()
    }
    path.write_text(yaml.safe_dump({"tokens": tokens, "tenants": tenants or {}}))
    return path


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def poll(condition: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    """Wait for `condition()` to be truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(every)  # polling interval


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def thread_server(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: _up(url), timeout=30)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


class ServerProcess:
    """`edt serve` in its own process (so that a test can SIGKILL it and start it again)."""

    def __init__(self, env: dict[str, str], cwd: Path, args: list[str] | None = None) -> None:
        self.env, self.cwd, self.args = env, cwd, args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"serve-{self.port}.log"

    def start(self, timeout: float = 120.0) -> ServerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "edt"), "serve", "--port", str(self.port), *self.args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            poll(lambda: _up(self.url) or self._died(), timeout=timeout, every=0.2)
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"edt serve exited: {self.log.read_text()[-2000:]}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL the server process only (its Ray children are left to fend for themselves)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def small_mc(samples: int = 40, chunk_size: int = 10, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples/jobs/methanol_mc.yaml").read_text())
    spec["scenarios"]["samples"] = samples
    spec["chunk_size"] = chunk_size
    spec.update(extra)
    return spec


def small_optimize(chunk_size: int = 2) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples/jobs/methanol_optimize.yaml").read_text()
    )
    params = spec["scenarios"]["parameters"]
    spec["scenarios"]["parameters"] = {k: v[:2] for k, v in params.items()}  # 2x2x2 = 8
    spec["chunk_size"] = chunk_size
    return spec
