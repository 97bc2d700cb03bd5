"""Helpers of the SDK tests: a ``vidrec gateway`` process on a server's Redis."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from rtsp_fixture import free_port
from serve_support import ServeProcess, kill, serve_env


@contextlib.contextmanager
def gateway(redis_url: str, port: int | None = None, **settings: str) -> Iterator[str]:
    """A ``vidrec gateway`` process on ``port`` (default: a free one) with these ``VIDREC_*``
    settings; its URL."""
    port = port or free_port()
    env = serve_env(None, redis_url=redis_url, **settings)
    command = [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    process = subprocess.Popen(
        [*command, "gateway", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, "vidrec gateway exited"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vidrec gateway did not answer /healthz"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(process.pid)
            process.wait()


def embedded_redis(server: ServeProcess) -> str:
    """The URL of the Redis ``vidrec serve`` started."""
    return server.wait_for(r"embedded Redis on (\S+)").group(1)


@dataclass(frozen=True)
class KeyedGateway:
    """A gateway that requires API keys: ``full`` may do anything, ``clips_only`` clips only."""

    url: str
    full: str
    clips_only: str
