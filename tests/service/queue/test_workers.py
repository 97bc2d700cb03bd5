"""Worker heartbeats against a real Redis: registration, liveness by TTL, metrics, leaving."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
import redis.asyncio

from service.keys import Keys
from service.queue import WorkerDirectory, WorkerRegistry

pytestmark = pytest.mark.integration


def beat(registry: WorkerRegistry, **info: Any) -> None:
    registry.beat(
        {"models": ["tiny"], "live_models": ["tiny"], "sessions": 0, "capacity": 4, **info}
    )


def test_beat_makes_a_worker_live(r: redis.Redis, arun: Any, keys: Keys) -> None:
    registry = WorkerRegistry(r, keys, "w1")
    assert not registry.alive("w1")
    registry.beat(
        {"models": ["a", "b"], "live_models": ["a"], "sessions": 2, "capacity": 8, "device": "cpu"},
        "# TYPE vidrec_up gauge\nvidrec_up 1\n",
    )
    assert registry.alive("w1") and registry.live_ids() == ["w1"]

    async def look(client: redis.asyncio.Redis) -> tuple[Any, Any]:
        directory = WorkerDirectory(client, keys)
        return await directory.live(), await directory.metrics()

    (info,), metrics = arun(look)
    assert info.worker_id == "w1" and info.models == ["a", "b"] and info.live_models == ["a"]
    assert (info.sessions, info.capacity, info.extra) == (2, 8, {"device": "cpu"})
    assert info.pid > 0 and info.host and 0 < info.started <= info.beat <= time.time()
    assert metrics == {"w1": "# TYPE vidrec_up gauge\nvidrec_up 1\n"}


def test_a_silent_worker_expires(r: redis.Redis, arun: Any, keys: Keys) -> None:
    quiet, steady = WorkerRegistry(r, keys, "quiet"), WorkerRegistry(r, keys, "steady")
    beat(quiet)
    beat(steady)
    assert steady.live_ids() == ["quiet", "steady"]
    for _ in range(6):  # 0.6 s: past the 0.4 s heartbeat TTL, with steady beating
        time.sleep(0.1)
        beat(steady)
    assert steady.live_ids() == ["steady"]
    assert not steady.alive("quiet")
    assert r.smembers(keys.workers) == {b"steady"}  # expired ids leave the set

    async def look(client: redis.asyncio.Redis) -> list[str]:
        directory = WorkerDirectory(client, keys)
        assert not await directory.alive("quiet")
        return [w.worker_id for w in await directory.live()] + sorted(await directory.metrics())

    assert arun(look) == ["steady", "steady"]


def test_deregister(r: redis.Redis, keys: Keys) -> None:
    registry = WorkerRegistry(r, keys, "w1")
    beat(registry)
    r.xadd(keys.inbox("w1"), {"type": "close", "session": "s"})
    registry.deregister()
    assert not registry.alive("w1") and registry.live_ids() == []
    assert not r.exists(keys.worker_metrics("w1"), keys.inbox("w1"))


def test_a_beat_replaces_the_previous_fields(r: redis.Redis, keys: Keys) -> None:
    registry = WorkerRegistry(r, keys, "w1")
    beat(registry, draining=True)
    beat(registry)
    assert r.hget(keys.worker("w1"), "draining") is None
    assert 0 < r.pttl(keys.worker("w1")) <= keys.heartbeat_ttl_ms


def test_the_other_workers_serving_a_model_are_found(r: redis.Redis, keys: Keys) -> None:
    me, other, third = (WorkerRegistry(r, keys, w) for w in ("me", "other", "third"))
    beat(me, models=["a"])
    beat(other, models=["a", "b"])
    beat(third, models=["c"])
    assert me.others_serving("a") == ["other"]  # itself left out
    assert me.others_serving("b") == ["other"] and me.others_serving("z") == []
    r.hset(keys.worker("third"), "models", "not json")  # a garbled beat serves nothing
    assert me.others_serving("c") == []
    other.deregister()
    assert me.others_serving("b") == []
