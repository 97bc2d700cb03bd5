"""Helpers of the worker tests: workers in a thread or a real process, the gateway's side of the
queue, media.

Nothing here stands in for a component: workers are the real ``Worker`` (in a thread, or
``python -m service.worker`` as a process), the gateway's side is the real ``ClipJobs`` and
``SessionDirectory`` on the test's Redis server, and the models are tiny random bundles.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import redis
from PIL import Image

# --import-mode=importlib keeps test directories off sys.path; the tiny bundles and the RTSP
# server helpers live beside the inference and ingest tests.
_TESTS = Path(__file__).resolve().parent.parent
for _helpers in (_TESTS / "inference", _TESTS / "ingest"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, clip_frames, write_bundles  # noqa: E402

from model_core.data.video_io import write_video  # noqa: E402
from service.keys import INBOX_MAXLEN, INBOX_TTL_S, Keys  # noqa: E402
from service.queue import ClipJobs, SessionDirectory, SessionInfo  # noqa: E402
from service.queue.sessions import _SEND_BUDGET  # noqa: E402
from service.redis_conn import async_client, sync_client  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.worker import Worker  # noqa: E402

__all__ = [
    "CLIP_MODEL",
    "LIVE_MODEL",
    "FrameSender",
    "GatewaySide",
    "ThreadWorker",
    "WorkerProcess",
    "clip_frames",
    "events_of",
    "mp4_bytes",
    "png_bytes",
    "wait_for",
    "worker_settings",
    "write_bundles",
]

T = TypeVar("T")

# Small enough that failover and heartbeats show up within a second or two.
FAST = {
    "heartbeat_interval_s": 0.2,
    "heartbeat_ttl_s": 1.0,
    "torch_threads": 1,
    "device": "cpu",
    # No gateway connection renews the leases of the sessions these tests open through the
    # queue: they hold them for the test (tests/service/worker/test_worker_leases.py lets them
    # lapse).
    "session_lease_s": 600.0,
}


def worker_settings(
    redis_url: str, key_prefix: str, models_dir: Path, **overrides: Any
) -> Settings:
    """Settings of a test worker: fast heartbeats, one torch thread, the tiny bundles."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "key_prefix": key_prefix,
        "models_dir": models_dir,
        "models": [CLIP_MODEL, LIVE_MODEL],
        **FAST,
        **overrides,
    }
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``VIDREC_*`` variables that make a process build ``settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = f"VIDREC_{name.upper()}"
        if isinstance(value, list):
            env[key] = json.dumps(value)
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        else:
            env[key] = str(value)
    return env


def wait_for(
    predicate: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """Polls until ``predicate()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(interval_s)


def events_of(client: redis.Redis, keys: Keys, session_id: str) -> list[dict[str, Any]]:
    """Every event of a session so far, oldest first, with ``event_id``."""
    out = []
    for entry_id, fields in client.xrange(keys.events(session_id)):
        event = json.loads(fields[b"event"])
        event["event_id"] = entry_id.decode()
        out.append(event)
    return out


def labels_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "labels"]


def mp4_bytes(seed: int = 0, frames: int = 16, size: int = 112) -> bytes:
    """An H.264 MP4 of a generated action clip."""
    video = np.concatenate([clip_frames(seed + i, 8, size) for i in range(max(1, frames // 8))])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "clip.mp4", video[:frames], fps=10.0)
        return path.read_bytes()


def png_bytes(frame: np.ndarray) -> bytes:
    """A lossless image of one frame, as a WebSocket client sends it."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


class ThreadWorker:
    """A real ``Worker`` running its loop in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.worker.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> ThreadWorker:
        self._thread.start()
        wait_for(lambda: self.worker.registered, what="the worker's first heartbeat")
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stops the loop as SIGTERM would and waits for the drain."""
        self.worker.stop()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the worker did not stop"

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.worker.close()
        if self.error is not None:
            raise self.error


class WorkerProcess:
    """``python -m service.worker`` with the settings as ``VIDREC_*`` variables."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.keys = Keys.from_settings(settings)
        self.worker_id = settings.resolved_worker_id()
        self.log_path = log_dir / f"worker-{self.worker_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")} | settings_env(
            settings
        )
        env["OMP_NUM_THREADS"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_registered(self, client: redis.Redis, timeout_s: float = 120.0) -> None:
        """Waits for the heartbeat hash (the models are loaded by then)."""

        def registered() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{self.log()}")
            return bool(client.exists(self.keys.worker(self.worker_id)))

        wait_for(registered, timeout_s, 0.05, f"worker {self.worker_id} to register")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        """Ends the process whatever its state (test teardown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class GatewaySide:
    """The gateway's half of the queue (``ClipJobs``, ``SessionDirectory``), each call on a fresh
    asyncio client."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None
        self.url = settings.redis_url
        self.settings = settings
        self.keys = Keys.from_settings(settings)

    def _run(self, make: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        async def main() -> T:
            client = async_client(self.url)
            try:
                return await make(client)
            finally:
                await client.aclose()

        return asyncio.run(main())

    def submit(self, data: bytes, model: str, params: dict[str, Any] | None = None) -> str:
        params = {"top_k": 5, "clips": 1, "crops": 1, **(params or {})}
        return self._run(
            lambda r: ClipJobs(r, self.keys, self.settings).submit(data, model, params, "clip.mp4")
        )

    def wait(self, job_id: str, timeout_s: float = 60.0) -> dict[str, Any] | None:
        return self._run(lambda r: ClipJobs(r, self.keys, self.settings).wait(job_id, timeout_s))

    def create(
        self,
        model: str,
        budget: dict[str, Any],
        kind: str = "live",
        source: str | None = None,
        stride: int | None = None,
    ) -> SessionInfo:
        async def create(r: Any) -> SessionInfo:
            info = await SessionDirectory(r, self.keys, self.settings).create(
                kind, model, budget, source
            )
            if stride is not None:  # as the gateway records a session's own stride
                await r.hset(self.keys.session(info.session_id), "stride", str(stride))
            return info

        return self._run(create)

    def send_frames(self, session_id: str, frames: list[bytes], first_index: int = 0) -> None:
        async def send(r: Any) -> None:
            directory = SessionDirectory(r, self.keys, self.settings)
            for i, data in enumerate(frames):
                await directory.send_frame(session_id, data, time.time(), first_index + i)

        self._run(send)

    def set_budget(self, session_id: str, budget: dict[str, Any]) -> None:
        self._run(
            lambda r: SessionDirectory(r, self.keys, self.settings).set_budget(session_id, budget)
        )

    def close(self, session_id: str) -> bool:
        return self._run(lambda r: SessionDirectory(r, self.keys, self.settings).close(session_id))

    def get(self, session_id: str) -> SessionInfo | None:
        return self._run(lambda r: SessionDirectory(r, self.keys, self.settings).get(session_id))


def lose_budget(client: redis.Redis, keys: Keys, session_id: str, budget: dict[str, Any]) -> None:
    """Sends a budget change with the gateway's own script, to an inbox nobody reads: the owner
    never gets the message, as when its inbox was trimmed past it during a stall. The record
    (budget and budget_seq) changes as for any budget change."""
    key = keys.session(session_id)
    owner = client.hget(key, "owner")
    assert owner is not None
    prefix, suffix = keys.inbox("\0").split("\0")
    args = (prefix, suffix, INBOX_MAXLEN, INBOX_TTL_S, session_id, json.dumps(budget))
    with client.pipeline(transaction=True) as pipe:  # the owner never sees the detour
        pipe.hset(key, "owner", "nobody")
        pipe.eval(_SEND_BUDGET, 1, key, *args)
        pipe.hset(key, "owner", owner)
        pipe.delete(keys.inbox("nobody"))
        pipe.execute()


def redis_client(settings: Settings) -> redis.Redis:
    assert settings.redis_url is not None
    return sync_client(settings.redis_url)


class FrameSender:
    """A client streaming frames to a session at a steady rate, in a thread, as a gateway
    routes them."""

    def __init__(self, gw: GatewaySide, session_id: str, frames: list[bytes], fps: float) -> None:
        self.gw, self.session_id, self.frames, self.fps = gw, session_id, frames, fps
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._send()), daemon=True)

    async def _send(self) -> None:
        assert self.gw.settings.redis_url is not None
        r = async_client(self.gw.settings.redis_url)
        directory = SessionDirectory(r, self.gw.keys, self.gw.settings)
        try:
            while not self._stop.is_set():
                data = self.frames[self.sent % len(self.frames)]
                await directory.send_frame(self.session_id, data, time.time(), self.sent)
                self.sent += 1
                await asyncio.sleep(1 / self.fps)
        finally:
            await r.aclose()

    def __enter__(self) -> FrameSender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
