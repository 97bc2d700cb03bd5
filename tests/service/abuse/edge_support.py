"""Real processes for the edge tests: ``vidrec gateway`` on a free loopback port, and a private
``redis-server`` a test may stop and start again.

The gateway is the CLI's own (``vidrec gateway --port 0``, its URL read from stdout), so the
uvicorn settings it applies (keep-alive, concurrency and h11 limits) are the ones under test.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np

from service.redis_conn import ping_url

GATEWAY_CODE = "import sys; from service.cli import main; sys.exit(main(sys.argv[1:]))"
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(**settings: object) -> dict[str, str]:
    """This environment without any ``VIDREC_*`` variable, plus ``settings`` as variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"VIDREC_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class GatewayProcess:
    """One ``vidrec gateway`` process on 127.0.0.1; ``output`` is its stdout and stderr."""

    def __init__(self, **settings: object) -> None:
        command = [sys.executable, "-c", GATEWAY_CODE, "gateway", "--port", "0"]
        command += ["--log-level", "warning"]
        self.process = subprocess.Popen(
            command,
            env=gateway_env(**settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.url = self.wait_for(r"listening on ([^\s\"]+)").group(1)
        except BaseException:
            self.stop()
            raise
        self.port = int(self.url.rsplit(":", 1)[1])
        self.ws_url = self.url.replace("http://", "ws://")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = READY_TIMEOUT_S) -> re.Match[str]:
        """The first output line that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}")
                self._changed.wait(min(left, 0.5))

    def client(self, timeout_s: float = 30.0) -> httpx.Client:
        """An HTTP client on the gateway."""
        return httpx.Client(base_url=self.url, timeout=timeout_s)

    def alive(self) -> bool:
        return self.process.poll() is None

    def open_fds(self) -> int:
        """File descriptors the gateway process holds now."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class RedisServer:
    """A private ``redis-server`` on a free port that a test may stop and start again (same
    port, so clients reconnect)."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is needed (scripts/install_system_deps.sh)"
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        command = [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10.0
        while not ping_url(self.url):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, f"redis-server did not start on {self.port}"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGKILL, as a crash would: clients see their connections drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def running_gateway(**settings: object) -> Iterator[GatewayProcess]:
    """A gateway process for the ``with`` block."""
    gateway = GatewayProcess(**settings)
    try:
        yield gateway
    finally:
        gateway.stop()


def decode_bomb(frames: int = 600, width: int = 3840, height: int = 2160) -> bytes:
    """A small H.264 MP4 that is costly to decode: one keyframe, then one all-skip P frame muxed
    ``frames - 1`` times (600 frames of 4K in about 44 KB, the issue's bomb)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "100000", "bframes": "0"}
        planes = np.zeros((height * 3 // 2, width), np.uint8)  # (Y + U + V rows, W)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        packets = []
        for index in range(2):
            frame.pts = index
            packets += stream.encode(frame)
        packets += stream.encode()
        key, skip = bytes(packets[0]), bytes(packets[1])
        for index in range(frames):
            packet = av.Packet(key if index == 0 else skip)
            packet.pts = packet.dts = index
            packet.time_base = packets[0].time_base
            packet.is_keyframe = index == 0
            packet.stream = stream
            container.mux(packet)
    return buf.getvalue()
