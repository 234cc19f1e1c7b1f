"""Shared test fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
