"""Starts and stops the GStreamer RTSP test server (rtsp_server.py) under Debian's python3."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")

# The RTSP server's Debian packages; scripts/install_system_deps.sh installs them for `make test`.
PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-rtsp",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
)


def missing_requirements() -> str | None:
    """Why the server cannot run here, or ``None`` when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "missing = [e for e in ('qtdemux', 'h264parse', 'rtph264pay')"
        " if Gst.ElementFactory.find(e) is None];"
        "print(' '.join(missing))"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        return f"GStreamer's RTSP server does not import: {result.stderr.strip()[-300:]}"
    if result.stdout.strip():
        return f"GStreamer elements missing: {result.stdout.strip()}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspTestServer:
    """One rtsp_server.py process; can be stopped and started again on the same port."""

    def __init__(self, mounts: dict[str, Path], log_dir: Path, port: int | None = None) -> None:
        """Prepares a server.

        Args:
            mounts: Mount name to MP4 (H.264) file.
            log_dir: Where the server's stderr goes (a pipe nobody reads could fill and block).
            port: Port to listen on; a free one when omitted.
        """
        self.mounts = mounts
        self.port = port or free_port()
        self._log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def url(self, mount: str) -> str:
        """The RTSP URL of a mount."""
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Starts the process and waits for it to listen."""
        if self.running:
            raise RuntimeError("the RTSP test server is already running")
        self._starts += 1
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for name, path in self.mounts.items():
            command += ["--mount", f"{name}={path}"]
        stderr = (self._log_dir / f"rtsp-server-{self._starts}.log").open("wb")
        with stderr:
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        line = self._read_line(timeout)
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"the RTSP test server did not start: {line!r}")

    def _read_line(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if selector.select(timeout=0.2):
                    return self._process.stdout.readline().decode(errors="replace").strip()
                if self._process.poll() is not None:
                    return f"exited with {self._process.returncode}"
        return "no answer in time"

    def stop(self) -> None:
        """Stops the process (SIGTERM, then SIGKILL) and waits for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
