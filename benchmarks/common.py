"""What several benchmarks share: ``vidrec serve`` in a subprocess, statistics, strict JSON and
the description of the machine they ran on.

The benchmarks import it as ``benchmarks.common``; one loaded by its path (``vidrec bench NAME``,
``python benchmarks/NAME.py``) first puts the checkout's root on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

SERVE_CODE = "import sys; from service.cli import main; sys.exit(main(sys.argv[1:]))"
START_TIMEOUT_S = 180.0


# Statistics and JSON.


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so the JSON is strict."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


# The machine.


def _cpu_name() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def _memory_bytes() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        return int(first.split()[1]) * 1024
    return None


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# What machine() can say, by the key it says it under (torch only imported when asked).
MACHINE_FACTS: dict[str, Callable[[], Any]] = {
    "host": platform.node,
    "machine": platform.machine,
    "cpu": _cpu_name,
    "cores": os.cpu_count,
    "memory_bytes": _memory_bytes,
    "gpu": _gpu,
    "os": platform.platform,
    "python": platform.python_version,
    "torch": _torch_version,
    "threads": _torch_threads,
}


def machine(*keys: str) -> dict[str, Any]:
    """The machine a benchmark ran on: the facts named (keys of :data:`MACHINE_FACTS`), in that
    order, so each benchmark's JSON keeps its own ``machine`` object."""
    return {key: MACHINE_FACTS[key]() for key in keys}


# The service.


def message_of(line: str) -> str:
    """The message of a line ``vidrec serve`` wrote: the line itself, or its ``message`` when it
    is a JSON log record (``VIDREC_LOG_FORMAT=json``)."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("message"), str):
                return record["message"]
    return line


def _is_warning(line: str) -> bool:
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "level" in record:
                return record["level"] in ("warning", "error", "critical")
    return re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line) is not None


class ServeProcess:
    """``vidrec serve --port 0 --workers W --log-level warning`` in a subprocess: its URL once it
    listens, its stderr lines, and the pids of its workers and embedded Redis.

    Args:
        env: The service's environment (``PYTHONUNBUFFERED`` is added).
        workers: Worker processes; :meth:`wait_ready` waits for each.
        models_dir: ``--models-dir``; None: the environment's or the shipped bundles.
    """

    def __init__(self, env: dict[str, str], workers: int, models_dir: Path | None = None) -> None:
        self.env = dict(env)
        self.env["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-c", SERVE_CODE, "serve", "--port", "0"]
        command += ["--workers", str(workers), "--log-level", "warning"]
        if models_dir is not None:
            command += ["--models-dir", str(models_dir)]
        self.workers = workers
        self.process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.worker_pids: dict[int, int] = {}
        self.redis_url: str | None = None
        self.redis_pid: int | None = None
        self._stderr = threading.Thread(target=self._drain, daemon=True)
        self._stderr.start()
        self.url = self._wait_url()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip()
            self.log.append(line)
            text = message_of(line)
            # 'vidrec serve: worker 1 started (pid 123)' (a restart names the new pid)
            started = re.search(r"worker (\d+) started \(pid (\d+)\)", text)
            if started:
                self.worker_pids[int(started.group(1))] = int(started.group(2))
            redis_line = re.search(r"embedded Redis on (\S+) \(pid (\d+)\)", text)
            if redis_line:
                self.redis_url, self.redis_pid = redis_line.group(1), int(redis_line.group(2))

    def _wait_url(self) -> str:
        assert self.process.stdout is not None
        line = message_of(self.process.stdout.readline().strip())
        if "listening on " not in line:
            self.stop()
            raise RuntimeError("vidrec serve did not start:\n" + "\n".join(self.log[-20:]))
        return line.split("listening on ", 1)[1].strip()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until /readyz answers 200 and every worker advertises its models."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    ready = client.get("/readyz").status_code == 200
                    if ready and self._ready_workers() >= self.workers:
                        return
                time.sleep(0.2)
        raise RuntimeError("the service did not get ready:\n" + "\n".join(self.log[-20:]))

    def _ready_workers(self) -> int:
        return sum(1 for line in self.log if re.search(r"worker \d+ ready", message_of(line)))

    def warnings(self, keep: int = 40) -> dict[str, Any]:
        """How many warning and error lines the service logged, and the last ``keep`` of them."""
        lines = [x for x in self.log if _is_warning(x)]
        return {"count": len(lines), "last": lines[-keep:]}

    def pids(self) -> dict[str, int]:
        named = {f"worker{i}": pid for i, pid in sorted(self.worker_pids.items())}
        named["gateway"] = self.process.pid
        if self.redis_pid is not None:
            named["redis"] = self.redis_pid
        return named

    def worker_info(self) -> list[dict[str, Any]]:
        """What each worker's heartbeat says of it (threads, device, capacity), read from the
        embedded Redis; empty when it cannot be read."""
        if self.redis_url is None:
            return []
        import redis

        from service.keys import Keys
        from service.settings import Settings

        # The service's settings: defaults (not this process's environment) and the overrides.
        prefix = self.env.get("VIDREC_KEY_PREFIX", "vidrec")
        keys = Keys.from_settings(Settings.model_construct(key_prefix=prefix))
        fields = ("pid", "torch_threads", "device", "capacity", "stride")
        found = []
        try:
            # bytes replies (no decode_responses), which redis's types do not tell apart
            client: Any = redis.Redis.from_url(self.redis_url, socket_timeout=2.0)
            try:
                for member in sorted(client.smembers(keys.workers)):
                    values = client.hmget(keys.worker(member.decode()), fields)
                    info = {f: v.decode() for f, v in zip(fields, values, strict=True) if v}
                    found.append({"id": member.decode(), **info})
            finally:
                client.close()
        except (redis.RedisError, OSError, UnicodeDecodeError):
            return []
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return status
