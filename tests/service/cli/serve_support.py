"""``vidrec serve`` as a real subprocess for the CLI tests: started on a free port (``--port 0``,
the URL read from its stdout), with tiny random bundles (or the shipped ones), one torch thread,
and its output kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

SERVE_CODE = "import sys; from service.cli import main; sys.exit(main(sys.argv[1:]))"
READY_TIMEOUT_S = 180.0


def serve_env(models_dir: Path | None, **settings: str) -> dict[str, str]:
    """This environment without any ``VIDREC_*`` variable, plus one thread and the bundles
    (``None``: no ``VIDREC_MODELS_DIR``, so the shipped demo bundles are served)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env.update({"OMP_NUM_THREADS": "1", "VIDREC_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    if models_dir is not None:
        env["VIDREC_MODELS_DIR"] = str(models_dir)
    env.update({f"VIDREC_{k.upper()}": v for k, v in settings.items()})
    return env


class ServeProcess:
    """One ``vidrec serve`` process; ``lines`` is its stdout and stderr, interleaved."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        command = [sys.executable, "-c", SERVE_CODE, "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()
        self.url = self.wait_for(r"listening on ([^\s\"]+)").group(1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(
        self, pattern: str, timeout_s: float = READY_TIMEOUT_S, after: int = 0
    ) -> re.Match[str]:
        """The first output line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reading()):
                    raise AssertionError(
                        f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def _reading(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"vidrec serve exited:\n{self.output}"
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise AssertionError(f"vidrec serve not ready in {timeout_s} s:\n{self.output}")

    def descendants(self) -> list[int]:
        """Every process below this one (workers, the Redis keeper and its server)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [], [self.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            found += children
            frontier += children
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Sends ``sig`` and waits; kills the process group after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for pid in [self.pid, *self.descendants()]:
                kill(pid)
            status = self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return status


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
