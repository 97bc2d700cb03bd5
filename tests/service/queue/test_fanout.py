"""The per-gateway event fan-out against a real Redis: order and exactly-once across subscribers
and sessions, catch-up, late joiners, unsubscribing, slow subscribers, a Redis restart, and the
number of client connections as subscribers grow."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from edge_support import RedisServer

from service.keys import Keys
from service.queue import EventFanout, EventWriter, Subscription
from service.queue.fanout import OWN_READS
from service.redis_conn import async_client, sync_client
from service.settings import Settings

pytestmark = pytest.mark.integration

Event = tuple[str, dict[str, Any]]


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """The queue tests' keys with the default stream bound: these streams hold a few hundred."""
    return Keys(prefix=settings.key_prefix)


async def _collect(sub: Subscription, n: int, timeout_s: float = 10.0) -> list[Event]:
    """The first ``n`` events the subscription gets; fails if they do not come in time."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} events"
        got += await sub.get(0.2)
    return got


async def _publish(r: redis.Redis, writer: EventWriter, sid: str, frames: range) -> list[str]:
    """Publishes labels events in a thread (the writer is a blocking client, as a worker's)."""
    return await asyncio.to_thread(
        lambda: [writer.publish(sid, {"type": "labels", "frame_index": i}) for i in frames]
    )


def _frames(events: list[Event]) -> list[int]:
    assert all(event["event_id"] == event_id for event_id, event in events)
    return [event["frame_index"] for _, event in events]


def test_many_subscribers_of_many_sessions_get_each_event_once_in_order(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)
    sessions = [f"s{i}" for i in range(6)]
    for sid in sessions:  # written before anyone subscribes
        writer.publish(sid, {"type": "labels", "frame_index": -1})

    async def main(client: redis.asyncio.Redis) -> dict[str, list[list[int]]]:
        # A small count: the reads come in several rounds.
        async with (
            EventFanout(client, keys, count=7) as fanout,
            contextlib.AsyncExitStack() as stack,
        ):
            subs = [
                await stack.enter_async_context(fanout.subscribe(sid, "0-0"))
                for sid in sessions
                for _ in range(4)
            ]
            writes = [_publish(r, writer, sid, range(60)) for sid in sessions]
            collected = asyncio.gather(*(_collect(sub, 61) for sub in subs))
            await asyncio.gather(*writes)
            got = await collected
            await asyncio.sleep(0.5)  # nothing more, no duplicate, arrives later
            assert not any(await asyncio.gather(*(sub.get(0.05) for sub in subs)))
            return {
                sid: [_frames(got[i]) for i, sub in enumerate(subs) if sub.session_id == sid]
                for sid in sessions
            }

    got = arun(main)
    for sid in sessions:
        assert len(got[sid]) == 4
        for frames in got[sid]:
            assert frames == [-1, *range(60)], sid


def test_catch_up_from_the_start_and_from_an_id_then_live(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)
    ids = [writer.publish("s1", {"type": "labels", "frame_index": i}) for i in range(250)]

    async def main(client: redis.asyncio.Redis) -> tuple[list[Event], list[Event]]:
        async with (
            EventFanout(client, keys, count=100) as fanout,
            fanout.subscribe("s1", "0-0") as everything,
            fanout.subscribe("s1", ids[200]) as rest,
        ):
            first = await _collect(everything, 250)
            tail = await _collect(rest, 49)
            await _publish(r, writer, "s1", range(250, 260))
            first += await _collect(everything, 10)
            tail += await _collect(rest, 10)
            return first, tail

    everything, rest = arun(main)
    assert _frames(everything) == list(range(260))
    assert _frames(rest) == list(range(201, 260))
    assert [event_id for event_id, _ in everything[:250]] == ids


def test_a_late_subscriber_joins_a_busy_read_quickly_and_misses_nothing(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)

    async def main(client: redis.asyncio.Redis) -> tuple[list[int], list[int], float]:
        async with (
            EventFanout(client, keys, block_ms=200) as fanout,
            fanout.subscribe("busy", "0-0") as early,
        ):
            await _publish(r, writer, "busy", range(3))
            await _collect(early, 3)
            # The shared read is now blocked on "busy"; "late" joins while it waits.
            await _publish(r, writer, "late", range(2))
            async with fanout.subscribe("late", "0-0") as late:
                caught = await late.get(1.0)  # its own catch-up read, at once
                start = time.monotonic()
                await _publish(r, writer, "late", range(2, 3))
                live = await _collect(late, 1)
                waited = time.monotonic() - start
            return _frames(caught), _frames(live), waited

    caught, live, waited = arun(main)
    assert caught == [0, 1]
    assert live == [2]
    # Bounded by one shared read (200 ms) plus a round trip; prints the figure for the record.
    print(f"late subscriber's first live event after {waited * 1000:.0f} ms")
    assert waited < 1.0


def test_unsubscribing_stops_delivery_and_an_idle_fanout_reads_nothing(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)

    async def main(client: redis.asyncio.Redis) -> tuple[int, int, int]:
        async with EventFanout(client, keys, block_ms=100) as fanout:
            async with fanout.subscribe("s1", "0-0") as sub:
                await _publish(r, writer, "s1", range(2))
                await _collect(sub, 2)
                open_now = fanout.subscriptions
            after = fanout.subscriptions
            await asyncio.sleep(0.2)  # the loop's read in flight ends
            reads = fanout.reads
            await _publish(r, writer, "s1", range(2, 4))
            await asyncio.sleep(0.5)
            return open_now, after, fanout.reads - reads

    open_now, after, reads_while_idle = arun(main)
    assert (open_now, after) == (1, 0)
    assert reads_while_idle == 0


def test_a_slow_subscriber_stalls_no_one_and_loses_nothing(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)

    async def main(client: redis.asyncio.Redis) -> tuple[list[int], list[int], list[int]]:
        async with (
            EventFanout(client, keys, count=10, queue_size=10) as fanout,
            fanout.subscribe("s1", "0-0") as slow,
            fanout.subscribe("s1", "0-0") as fast,
            fanout.subscribe("s2", "0-0") as other,
        ):
            await asyncio.gather(slow.get(0.1), fast.get(0.1), other.get(0.1))  # live now
            await asyncio.gather(
                _publish(r, writer, "s1", range(80)), _publish(r, writer, "s2", range(80))
            )
            quick = await asyncio.gather(_collect(fast, 80), _collect(other, 80))
            lagging = await _collect(slow, 80)  # read only now: its queue filled long ago
            return _frames(quick[0]), _frames(quick[1]), _frames(lagging)

    fast, other, slow = arun(main)
    assert fast == other == slow == list(range(80))


def test_rest_reads_what_the_shared_loop_has_not_handed_over(
    r: redis.Redis, arun: Any, keys: Keys
) -> None:
    writer = EventWriter(r, keys)
    ids = [writer.publish("s1", {"type": "labels", "frame_index": i}) for i in range(5)]

    async def main(client: redis.asyncio.Redis) -> list[int]:
        fanout = EventFanout(client, keys, count=2)
        # Not started: the loop never reads, so only rest() can.
        async with fanout.subscribe("s1", ids[0]) as sub:
            return _frames(await sub.rest())

    assert arun(main) == [1, 2, 3, 4]


def _clients(url: str) -> int:
    with sync_client(url) as admin:
        info: Any = admin.info("clients")
        return int(info["connected_clients"])


def test_connections_stay_constant_from_1_to_200_subscribers(
    redis_url: str, key_prefix: str
) -> None:
    keys = Keys(prefix=key_prefix)
    writer_client = sync_client(redis_url)
    writer = EventWriter(writer_client, keys)
    counts: dict[int, int] = {}
    baseline = _clients(redis_url)

    async def main() -> None:
        subs: list[Subscription] = []
        async with (
            async_client(redis_url, max_connections=500) as client,
            EventFanout(client, keys) as fanout,
            contextlib.AsyncExitStack() as stack,
        ):
            for n in (1, 10, 50, 200):
                while len(subs) < n:
                    sub = fanout.subscribe(f"cam{len(subs)}", "0-0")
                    subs.append(await stack.enter_async_context(sub))
                # Every subscriber waits on its queue, as a relay does.
                waits = [asyncio.create_task(s.get(2.0)) for s in subs]
                await asyncio.sleep(0.6)  # several shared reads
                sid = subs[-1].session_id
                await asyncio.to_thread(writer.publish, sid, {"type": "labels", "frame_index": n})
                await asyncio.sleep(0.3)
                counts[n] = await asyncio.to_thread(_clients, redis_url) - baseline
                got = await asyncio.gather(*waits)
                assert next(e for _, e in got[-1])["frame_index"] == n

    try:
        asyncio.run(main())
    finally:
        writer_client.close()
    print(f"Redis clients added by the fan-out, by subscribers: {counts}")
    # The shared read holds one connection; the catch-up reads of new subscribers take at most
    # OWN_READS (8) more, briefly (a pool keeps what it opened); the writer's adds 1. Before the
    # fan-out, each subscriber's blocking read held one: 200 subscribers, 200 connections.
    assert counts[200] <= 1 + OWN_READS + 1, counts
    assert counts[200] - counts[10] <= 2, counts


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_loop_survives_a_redis_restart_and_subscribers_keep_their_place(
    private_redis: RedisServer,
) -> None:
    keys = Keys(prefix="fanout")

    def publish(frames: range) -> list[str]:
        with sync_client(private_redis.url) as w:
            writer = EventWriter(w, keys)
            return [writer.publish("s1", {"type": "labels", "frame_index": i}) for i in frames]

    async def main() -> tuple[list[int], list[int], bool]:
        client = async_client(private_redis.url, max_connections=50)
        async with (
            client,
            EventFanout(client, keys, block_ms=100) as fanout,
            fanout.subscribe("s1", "0-0") as sub,
        ):
            await asyncio.to_thread(publish, range(3))
            before = _frames(await _collect(sub, 3))
            private_redis.stop()
            await asyncio.sleep(1.0)  # the loop meets the error and backs off
            await asyncio.to_thread(private_redis.start)
            # The restarted server is empty: new ids follow the old (time-ordered).
            await asyncio.to_thread(publish, range(3, 6))
            after = _frames(await _collect(sub, 3, timeout_s=15))
            alive = fanout._task is not None and not fanout._task.done()
            return before, after, alive

    before, after, alive = asyncio.run(main())
    assert before == [0, 1, 2]
    assert after == [3, 4, 5]
    assert alive
