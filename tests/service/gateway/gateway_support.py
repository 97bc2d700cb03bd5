"""Helpers of the gateway tests: a stand-in worker, a small MP4, the TestClient import.

The stand-in worker is not a mock: it registers through the real ``WorkerRegistry`` (a heartbeat
hash with a catalog), takes clip jobs through the real ``ClipConsumer`` and reads its inbox through
the real ``SessionInbox``, all on the test's Redis server. Only the model is missing: it answers a
job with a fixed result and a frame with a labels event.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.x warns that its TestClient prefers httpx2 to httpx; the venv has httpx, which works.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from service.keys import Keys
from service.metrics import WorkerMetrics
from service.queue import ClipConsumer, ClipTask, SessionInbox, SessionMessage, WorkerRegistry
from service.redis_conn import sync_client
from service.settings import Settings

CLIP_MODEL = "demo_clip"
LIVE_MODEL = "demo_live"
LABELS = ["waving", "clapping", "jumping"]
LIVE_RECOMMENDED_BUDGET = {"threshold": 0.5}  # what the live model's bundle recommends

__all__ = [
    "CLIP_MODEL",
    "LABELS",
    "LIVE_MODEL",
    "LIVE_RECOMMENDED_BUDGET",
    "StandInWorker",
    "TestClient",
    "encode_mp4",
]


def catalog_rows() -> list[dict[str, Any]]:
    """What ``ModelCatalog.describe()`` gives for two small models."""
    base = {"labels": LABELS, "img_size": 64, "gmacs_per_frame": 0.1, "parameters": 1000}
    return [
        {
            **base,
            "name": CLIP_MODEL,
            "family": "tokshift",
            "frames": 8,
            "gmacs_per_clip": 0.8,
            "live": False,
            "recommended_budget": None,
            "default_for": ["clip"],
        },
        {
            **base,
            "name": LIVE_MODEL,
            "family": "factorized",
            "frames": 4,
            "gmacs_per_clip": 0.4,
            "live": True,
            "recommended_budget": LIVE_RECOMMENDED_BUDGET,
            "default_for": ["live"],
        },
    ]


def encode_mp4(num_frames: int = 12, width: int = 64, height: int = 48) -> bytes:
    """A small H.264 MP4 of moving gradients."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (np.arange(width) * 4 + i * 10) % 256
            img[..., 1] = i * 20 % 256
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def default_answer(task: ClipTask) -> dict[str, Any]:
    """A result shaped like the worker's."""
    return {
        "model": task.model,
        "labels": [{"label": "waving", "score": 0.9}, {"label": "jumping", "score": 0.1}],
        "params": task.params,
        "timing_ms": {"queue_wait": 1.0, "decode": 2.0, "inference": 3.0, "total": 6.0},
        "compute": {"gmacs": 0.8, "frames": 8},
    }


@dataclass
class StandInWorker:
    """A worker without a model, on the real queue API, in a thread.

    Attributes:
        settings: The deployment's settings (Redis URL, prefix, TTLs).
        worker_id: Its id.
        consume: Whether it takes clip jobs (off: jobs stay queued, to fill the queue).
        answer: Turns a task into a result dict, or raises to fail it with the exception's
            ``error`` attribute.
        messages: Every inbox message it read, in order.
        capacity: The live sessions it advertises room for.
    """

    settings: Settings
    worker_id: str = "w1"
    consume: bool = True
    models: list[str] = field(default_factory=lambda: [CLIP_MODEL])
    live_models: list[str] = field(default_factory=lambda: [LIVE_MODEL])
    answer: Callable[[ClipTask], dict[str, Any]] = default_answer
    messages: list[SessionMessage] = field(default_factory=list)
    capacity: int = 4

    def __post_init__(self) -> None:
        assert self.settings.redis_url is not None
        self.redis = sync_client(self.settings.redis_url)
        self.keys = Keys.from_settings(self.settings)
        self.registry = WorkerRegistry(self.redis, self.keys, self.worker_id)
        self.consumer = ClipConsumer(self.redis, self.keys, self.worker_id, self.settings)
        self.inbox = SessionInbox(self.redis, self.keys, self.worker_id)
        self.metrics = WorkerMetrics()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"worker-{self.worker_id}")
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def beat(self) -> None:
        """One heartbeat with the catalog and the metrics text."""
        self.registry.beat(
            {
                "models": self.models,
                "live_models": self.live_models,
                "catalog": catalog_rows(),
                "sessions": len(self.inbox.owned()),
                "capacity": self.capacity,
            },
            self.metrics.render(),
        )

    def start(self) -> StandInWorker:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.registry.deregister()
        self.redis.close()

    def wait_for(
        self, predicate: Callable[[list[SessionMessage]], bool], timeout_s: float = 5.0
    ) -> list[SessionMessage]:
        """Waits until the messages read so far satisfy ``predicate``; returns them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                seen = list(self.messages)
            if predicate(seen):
                return seen
            time.sleep(0.02)
        raise AssertionError(f"inbox messages never matched: {[m.type for m in seen]}")

    def _run(self) -> None:
        last_beat = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_beat > self.settings.heartbeat_interval_s:
                    self.beat()
                    last_beat = time.monotonic()
                if self.consume:
                    for task in self.consumer.read(count=4, block_ms=20):
                        self._clip(task)
                for message in self.inbox.read(block_ms=20):
                    with self._lock:
                        self.messages.append(message)
                    self._session(message)
        except BaseException as exc:  # surfaced by the fixture's teardown
            self.errors.append(exc)

    def _clip(self, task: ClipTask) -> None:
        self.consumer.mark_running(task)
        try:
            result = self.answer(task)
        except Exception as exc:
            self.consumer.fail(
                task, getattr(exc, "error", {"code": "internal", "message": str(exc)})
            )
            self.metrics.observe_clip_job(task.model, "failed")
            return
        self.consumer.finish(task, result)
        self.metrics.observe_clip_job(task.model, "done", inference_s=0.003, gmacs=0.8, frames=8)

    def _session(self, message: SessionMessage) -> None:
        if message.type == "open":
            self.inbox.update(message.session_id, state="running")
        elif message.type == "frame":
            self.inbox.update(message.session_id, frames_processed=(message.index or 0) + 1)
            self.inbox.publish(
                message.session_id,
                {
                    "type": "labels",
                    "session_id": message.session_id,
                    "frame_index": message.index,
                    "labels": [{"label": "waving", "score": 0.8}],
                    "latency_ms": (time.time() - (message.received_s or 0)) * 1000,
                    "compute": {"gmacs": 0.01, "dense_gmacs": 0.1, "recompute_fraction": 0.1},
                    "dropped": 0,
                },
            )
            self.metrics.observe_step(
                LIVE_MODEL,
                seconds=0.001,
                frames=1,
                gmacs=0.01,
                dense_gmacs=0.1,
                recompute_fractions=[0.1],
            )
        elif message.type == "close":
            self.inbox.update(message.session_id, state="closed")


# Fixtures both the gateway and the abuse tests use; their conftests import them by name.
@pytest.fixture
def make_worker(settings: Settings) -> Iterator[Callable[..., StandInWorker]]:
    """Starts stand-in workers; stops them (and checks they raised nothing) after the test."""
    started: list[StandInWorker] = []

    def make(**kwargs: Any) -> StandInWorker:
        worker = StandInWorker(settings=kwargs.pop("settings", settings), **kwargs).start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
    for worker in started:
        assert not worker.errors, worker.errors


@pytest.fixture(scope="session")
def mp4() -> bytes:
    """A small valid H.264 MP4."""
    return encode_mp4()
