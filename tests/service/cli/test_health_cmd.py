"""``vidrec health``: the probe the image's HEALTHCHECK and the Kubernetes worker probes run.

The container side (HEALTHCHECK in a running container) is exercised by tests/deploy's compose
test; here the role detection and the worker probe against a real Redis.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from service.cli import main
from service.cli.health_cmd import main_role, probe_gateway, probe_worker
from service.keys import Keys
from service.queue import WorkerRegistry
from service.redis_conn import sync_client
from service.settings import Settings


def _proc(tmp_path: Path, pid: int, *argv: str) -> Path:
    directory = tmp_path / str(pid)
    directory.mkdir(parents=True)
    (directory / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (("/opt/vidrec/bin/python3", "/opt/vidrec-app/bin/vidrec", "worker"), "worker"),
        (("/opt/vidrec/bin/python3", "/opt/vidrec-app/bin/vidrec", "gateway"), "gateway"),
        (("vidrec", "serve", "--host", "0.0.0.0"), "gateway"),
        (("redis-server", "--port", "6379"), None),
    ],
)
def test_role_is_read_from_the_main_process(
    tmp_path: Path, argv: tuple[str, ...], role: str | None
) -> None:
    assert main_role(_proc(tmp_path, 1, *argv)) == role


def test_role_behind_an_init_process(tmp_path: Path) -> None:
    # With `init: true` PID 1 is catatonit and vidrec its child.
    _proc(tmp_path, 1, "/run/podman-init", "--", "vidrec", "worker")
    assert main_role(tmp_path) == "worker"
    other = tmp_path / "other"
    _proc(other, 1, "/sbin/catatonit", "--")
    _proc(other, 2, "vidrec", "gateway")
    assert main_role(other) == "gateway"


def test_worker_probe_follows_the_heartbeat(redis_url: str, key_prefix: str) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix)
    assert probe_worker(settings, 2.0) == (
        f"no worker of host {socket.gethostname()} heartbeats with its models loaded"
    )
    registry = WorkerRegistry(
        sync_client(redis_url), Keys.from_settings(settings), f"{socket.gethostname()}-7"
    )
    # Registered but still loading its models: not healthy yet (what the startup probe waits for).
    registry.beat({"models": [], "live_models": [], "sessions": 0, "capacity": 4})
    assert probe_worker(settings, 2.0) is not None
    registry.beat({"models": ["m"], "live_models": [], "sessions": 0, "capacity": 4})
    assert probe_worker(settings, 2.0) is None
    registry.deregister()
    assert probe_worker(settings, 2.0) is not None


def test_worker_probe_reports_an_unreachable_redis() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    problem = probe_worker(Settings(redis_url=f"redis://127.0.0.1:{port}/0"), 2.0)
    assert problem is not None and problem.startswith("redis:")


def test_gateway_probe_names_what_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    problem = probe_gateway(Settings(port=port), "/healthz", 2.0)
    assert problem is not None and f"127.0.0.1:{port}/healthz" in problem


def test_command_exit_status(
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VIDREC_REDIS_URL", redis_url)
    monkeypatch.setenv("VIDREC_KEY_PREFIX", key_prefix)
    assert main(["health", "--role", "worker"]) == 1
    assert "no worker of host" in capsys.readouterr().err
    registry = WorkerRegistry(
        sync_client(redis_url), Keys(prefix=key_prefix), f"{socket.gethostname()}-8"
    )
    registry.beat({"models": ["m"], "live_models": ["m"], "sessions": 0, "capacity": 4})
    try:
        assert main(["health", "--role", "worker"]) == 0
    finally:
        registry.deregister()
