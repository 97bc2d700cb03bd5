"""Session events against a real Redis: publish, resume after an id, wait, bound, last event."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from service.keys import Keys
from service.queue import EventReader, EventWriter

pytestmark = pytest.mark.integration


def test_read_resumes_after_an_event_id(r: redis.Redis, arun: Any, keys: Keys) -> None:
    writer = EventWriter(r, keys)
    ids = [writer.publish("s1", {"type": "labels", "frame_index": i}) for i in range(5)]

    async def read(client: redis.asyncio.Redis) -> tuple[Any, Any, Any]:
        reader = EventReader(client, keys)
        return (
            await reader.read("s1"),
            await reader.read("s1", after=ids[1]),
            await reader.read("s1", after=ids[-1]),
        )

    everything, rest, nothing = arun(read)
    assert [event_id for event_id, _ in everything] == ids
    assert [event["frame_index"] for _, event in rest] == [2, 3, 4]
    assert all(event["event_id"] == event_id for event_id, event in rest)
    assert nothing == []


def test_read_waits_for_the_next_event(r: redis.Redis, arun: Any, keys: Keys) -> None:
    writer = EventWriter(r, keys)
    first = writer.publish("s1", {"type": "session"})
    timer = threading.Timer(0.2, writer.publish, ("s1", {"type": "labels", "frame_index": 4}))

    async def read(client: redis.asyncio.Redis) -> tuple[Any, float, Any]:
        reader = EventReader(client, keys)
        start = time.monotonic()
        timer.start()
        events = await reader.read("s1", after=first, block_ms=3000)
        waited = time.monotonic() - start
        empty = await asyncio.wait_for(reader.read("s1", after="$", block_ms=None), 1.0)
        return events, waited, empty

    try:
        events, waited, empty = arun(read)
    finally:
        timer.join()
    assert [event["frame_index"] for _, event in events] == [4]
    assert waited < 2.0
    assert empty == []


def test_stream_is_bounded_and_expires(r: redis.Redis, keys: Keys) -> None:
    writer = EventWriter(r, keys)
    for i in range(keys.events_maxlen * 3):
        writer.publish("s1", {"type": "labels", "frame_index": i})
    # MAXLEN ~ trims whole nodes: near the bound, never unbounded.
    assert keys.events_maxlen <= r.xlen(keys.events("s1")) < keys.events_maxlen * 2
    assert 0 < r.ttl(keys.events("s1")) <= keys.session_ttl_s


def test_labels_event_becomes_the_sessions_last_event(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)
    r.hset(keys.session("s1"), "state", "running")
    event_id = writer.publish("s1", {"type": "labels", "frame_index": 8, "labels": []})
    writer.publish("s1", {"type": "source", "state": "reconnecting"})
    stored = r.hget(keys.session("s1"), "last_event")
    assert stored is not None and event_id in stored.decode() and b'"frame_index":8' in stored
    # An unknown (expired) session gets no hash back without a TTL.
    writer.publish("gone", {"type": "labels", "frame_index": 1})
    assert not r.exists(keys.session("gone"))

    async def last(client: redis.asyncio.Redis) -> Any:
        return await EventReader(client, keys).last_id("s1"), await EventReader(
            client, keys
        ).last_id("none")

    newest, none = arun(last)
    assert newest is not None and newest != event_id and none is None


def test_publish_many_publishes_a_steps_events_in_order_with_each_last_event(
    r: redis.Redis, keys: Keys
) -> None:
    writer = EventWriter(r, keys)
    r.hset(keys.session("a"), "state", "running")
    r.hset(keys.session("b"), "state", "running")
    writer.publish_many(
        [
            ("a", {"type": "labels", "frame_index": 4, "labels": [{"label": "x", "score": 0.5}]}),
            ("b", {"type": "error", "code": "bad", "message": "no"}),
            ("a", {"type": "labels", "frame_index": 8, "labels": []}),
            ("gone", {"type": "labels", "frame_index": 1}),
        ]
    )
    a: Any = r.xrange(keys.events("a"))
    assert [json.loads(fields[b"event"])["frame_index"] for _, fields in a] == [4, 8]
    assert 0 < r.ttl(keys.events("a")) <= keys.session_ttl_s
    assert r.xlen(keys.events("b")) == 1
    # The newest labels event is the last event, parsed as JSON with its own id added.
    stored: Any = r.hget(keys.session("a"), "last_event")
    last = json.loads(stored)
    assert last == {"type": "labels", "frame_index": 8, "labels": [], "event_id": a[-1][0].decode()}
    assert r.hget(keys.session("b"), "last_event") is None  # an error event is not labels
    assert not r.exists(keys.session("gone"))  # no hash brought back without a TTL
    assert r.xlen(keys.events("gone")) == 1
