"""Worker heartbeats: a worker registers itself (sync), the gateway lists the live ones (asyncio).

A worker is alive exactly while its heartbeat hash exists: each beat rewrites it with a TTL of
``heartbeat_ttl_s``, so a worker that dies (even by SIGKILL) disappears within that time and its
sessions become orphans for the others to adopt. Its Prometheus text rides along under a key with
the same TTL, so the gateway's ``/metrics`` can merge the live workers' figures.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from service.keys import Keys
from service.queue._codec import as_float, as_int, as_json, text, text_hash, to_field


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker as its last heartbeat described it.

    Attributes:
        worker_id: The worker's id.
        host: Host name.
        pid: Process id.
        models: Models it serves clips with.
        live_models: Models it runs live sessions with.
        sessions: Sessions it was running at the last beat.
        capacity: Sessions it can run at once.
        started: When it started, unix seconds.
        beat: Its last heartbeat, unix seconds.
        extra: Other fields it published, as text.
    """

    worker_id: str
    host: str
    pid: int
    models: list[str]
    live_models: list[str]
    sessions: int
    capacity: int
    started: float
    beat: float
    extra: dict[str, str] = field(default_factory=dict)


_KNOWN = {"host", "pid", "models", "live_models", "sessions", "capacity", "started", "beat"}


def parse_worker(worker_id: str, fields: dict[str, str]) -> WorkerInfo:
    """A heartbeat hash (as text) as a :class:`WorkerInfo`."""
    return WorkerInfo(
        worker_id=worker_id,
        host=fields.get("host", ""),
        pid=as_int(fields.get("pid")),
        models=list(as_json(fields.get("models"), [])),
        live_models=list(as_json(fields.get("live_models"), [])),
        sessions=as_int(fields.get("sessions")),
        capacity=as_int(fields.get("capacity")),
        started=as_float(fields.get("started")),
        beat=as_float(fields.get("beat")),
        extra={k: v for k, v in fields.items() if k not in _KNOWN},
    )


class WorkerRegistry:
    """A worker's own registration (blocking client).

    Args:
        redis: A sync client.
        keys: Key names; ``heartbeat_ttl_s`` is the lifetime of one beat.
        worker_id: This worker's id.
    """

    def __init__(self, redis: redis.Redis, keys: Keys, worker_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.started = time.time()

    def beat(self, info: dict[str, Any], metrics_text: str = "") -> None:
        """Publishes this worker's state and metrics and renews its liveness.

        Args:
            info: Fields of the heartbeat hash (``models``, ``live_models``, ``sessions``,
                ``capacity``...); lists are stored as JSON. ``host``, ``pid``, ``started`` and
                ``beat`` are filled in.
            metrics_text: Prometheus text exposition of this worker.
        """
        fields = {"host": socket.gethostname(), "pid": os.getpid(), "started": repr(self.started)}
        fields.update(info)
        fields["beat"] = repr(time.time())
        ttl_ms = self.keys.heartbeat_ttl_ms
        key = self.keys.worker(self.worker_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)  # fields a previous beat had and this one has not must go
            pipe.hset(key, mapping={k: to_field(v) for k, v in fields.items()})
            pipe.pexpire(key, ttl_ms)
            pipe.set(self.keys.worker_metrics(self.worker_id), metrics_text, px=ttl_ms)
            pipe.sadd(self.keys.workers, self.worker_id)
            pipe.execute()

    def deregister(self) -> None:
        """Removes this worker at once (a clean shutdown), its inbox included."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(
                self.keys.worker(self.worker_id),
                self.keys.worker_metrics(self.worker_id),
                self.keys.inbox(self.worker_id),
            )
            pipe.srem(self.keys.workers, self.worker_id)
            pipe.execute()

    def alive(self, worker_id: str) -> bool:
        """Whether that worker's heartbeat is current."""
        return bool(self.redis.exists(self.keys.worker(worker_id)))

    def live_ids(self) -> list[str]:
        """Ids of the live workers, sorted; ids whose heartbeat expired leave the set."""
        ids = sorted(text(member) for member in self.redis.smembers(self.keys.workers))
        if not ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(self.keys.worker(worker_id))
            exists = pipe.execute()
        dead = [worker_id for worker_id, ok in zip(ids, exists, strict=True) if not ok]
        if dead:
            self.redis.srem(self.keys.workers, *dead)
        return [worker_id for worker_id, ok in zip(ids, exists, strict=True) if ok]

    def others_serving(self, model: str) -> list[str]:
        """Ids of the other live workers whose last beat advertised ``model`` for clips."""
        others = [w for w in self.live_ids() if w != self.worker_id]
        if not others:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in others:
                pipe.hget(self.keys.worker(worker_id), "models")
            raws = pipe.execute()
        serving = []
        for worker_id, raw in zip(others, raws, strict=True):
            models = as_json(None if raw is None else text(raw), [])
            if isinstance(models, list) and model in models:
                serving.append(worker_id)
        return serving


class WorkerDirectory:
    """The gateway's view of the workers (asyncio client)."""

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def _ids(self) -> list[str]:
        return sorted(text(member) for member in await self.redis.smembers(self.keys.workers))

    async def live(self) -> list[WorkerInfo]:
        """The live workers, sorted by id."""
        ids = await self._ids()
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(self.keys.worker(worker_id))
            replies = await pipe.execute()
        return [
            parse_worker(worker_id, text_hash(raw))
            for worker_id, raw in zip(ids, replies, strict=True)
            if raw
        ]

    async def alive(self, worker_id: str) -> bool:
        """Whether that worker's heartbeat is current."""
        return bool(await self.redis.exists(self.keys.worker(worker_id)))

    async def metrics(self) -> dict[str, str]:
        """Prometheus text of each live worker, by worker id."""
        ids = await self._ids()
        if not ids:
            return {}
        values = await self.redis.mget([self.keys.worker_metrics(worker_id) for worker_id in ids])
        return {
            worker_id: text(value)
            for worker_id, value in zip(ids, values, strict=True)
            if value is not None
        }
