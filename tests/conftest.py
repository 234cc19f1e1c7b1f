"""Shared test fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port

BIN = Path(sys.executable).parent

# ---- PostgreSQL: a fresh schema of a reachable server, or the case skips -----------

# Override to test against another server; unreachable means the PostgreSQL cases skip.
PG_SQLA_URL = os.environ.get(
    "EDT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_ADMIN_URL = PG_SQLA_URL.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_connect() -> Any:
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL confined to a fresh schema (via search_path), dropped afterwards,
    so parallel test runs never see each other's tables."""
    schema = f"edt_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect() as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{PG_SQLA_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# ---- S3: a real S3-protocol server (moto) on loopback --------------------------------


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    """One moto server per test session; tests isolate themselves by bucket name."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Endpoint URL of a loopback S3 server, with the standard AWS environment pointing at it.

    The developer's own AWS setup (profile, config files, service-specific endpoint) is
    masked so that it can neither redirect the tests nor be touched by them.
    """
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A corporate HTTP proxy must not intercept loopback traffic.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return _moto_endpoint


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """Name of a fresh, empty bucket on the loopback S3 server."""
    import boto3

    name = f"edt-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One embedded Ray instance (loopback, 2 CPUs) shared by the tests that need one."""
    from cluster.runtime import connect, shutdown

    connect(num_cpus=2)
    yield
    shutdown()


# ---- a Ray cluster started with `ray start` ------------------------------------------


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    """A Ray head on loopback on a free port (6379 may be Redis), stopped with its process group."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # poll until the head answers
            probe = subprocess.run(
                [str(BIN / "ray"), "status", f"--address={address}"], capture_output=True, env=env
            )
            if probe.returncode == 0:
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"ray head did not start: {head.stderr.read() if head.stderr else ''}"
                )
            time.sleep(0.5)  # polling interval
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


# ---- faults and test hooks ---------------------------------------------------------------


@pytest.fixture
def s3_proxy(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A cuttable TCP proxy in front of the loopback S3 server; AWS_ENDPOINT_URL points at it."""
    from tests.support import FaultProxy

    host, port = s3_server.removeprefix("http://").rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Holds every chunk but the first until the test creates the file `open` in this folder
    (cluster.pool's test hook), so that a test acts while its job is surely mid-way."""
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.setenv("EDT_TEST_GATE_DIR", str(folder))
    try:
        yield folder
    finally:
        (folder / "open").touch()  # never leave workers waiting


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[Any]:
    """Starts multi-node Ray clusters on this machine (`tests.ray_nodes`): call it with the
    number of worker nodes; every cluster it started is stopped at the end."""
    from tests.ray_nodes import RayNodes

    started: list[RayNodes] = []

    def start(workers: int = 1) -> RayNodes:
        nodes = RayNodes(tmp_path / f"cluster{len(started)}")
        nodes.workdir.mkdir()
        started.append(nodes)
        nodes.start_head()
        for _ in range(workers):
            nodes.add_worker()
        return nodes

    try:
        yield start
    finally:
        for nodes in started:
            nodes.stop()
