"""Sessions against a real Redis: owner choice, routing to the owner's inbox, adoption, closing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from service.keys import Keys
from service.queue import (
    NoWorkerError,
    SessionClosedError,
    SessionDirectory,
    SessionInbox,
    SessionNotFoundError,
    WorkerInfo,
    WorkerRegistry,
    choose_owner,
)
from service.settings import Settings

pytestmark = pytest.mark.integration


def register(
    r: redis.Redis, keys: Keys, worker_id: str, live: list[str], capacity: int = 4
) -> WorkerRegistry:
    registry = WorkerRegistry(r, keys, worker_id)
    registry.beat({"models": live, "live_models": live, "sessions": 0, "capacity": capacity})
    return registry


def create(arun: Any, keys: Keys, settings: Settings, model: str = "tiny", **kw: Any) -> Any:
    async def go(client: redis.asyncio.Redis) -> Any:
        directory = SessionDirectory(client, keys, settings)
        return await directory.create(kw.pop("kind", "live"), model, {"fraction": 0.25}, **kw)

    return arun(go)


def worker(worker_id: str, live: list[str], capacity: int = 4) -> WorkerInfo:
    return WorkerInfo(worker_id, "h", 1, live, live, 0, capacity, 0.0, 0.0)


def test_choose_owner() -> None:
    workers = [worker("a", ["m"]), worker("b", ["m"]), worker("c", ["other"])]
    assert choose_owner(workers, {}, "m", 8).worker_id == "a"  # tie: lowest id
    assert choose_owner(workers, {"a": 2, "b": 1}, "m", 8).worker_id == "b"
    with pytest.raises(NoWorkerError, match="no live worker runs model 'x'"):
        choose_owner(workers, {}, "x", 8)
    full = [worker("a", ["m"], capacity=1), worker("b", ["m"], capacity=2)]
    assert choose_owner(full, {"a": 1, "b": 1}, "m", 8).worker_id == "b"
    with pytest.raises(NoWorkerError, match="capacity"):
        choose_owner(full, {"a": 1, "b": 2}, "m", 8)


def test_create_picks_the_live_worker_with_fewest_sessions(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    with pytest.raises(NoWorkerError):
        create(arun, keys, settings)
    register(r, keys, "w1", ["tiny"])
    register(r, keys, "w2", ["tiny"])
    register(r, keys, "w3", ["other"])
    owners = [create(arun, keys, settings).owner for _ in range(4)]
    assert owners == ["w1", "w2", "w1", "w2"]

    info = create(arun, keys, settings, kind="rtsp", source="rtsp://cam:secret@10.0.0.5/live")
    assert info.kind == "rtsp" and info.state == "opening" and info.epoch == 0
    assert info.source == "rtsp://cam:***@10.0.0.5/live"
    assert info.source_url == "rtsp://cam:secret@10.0.0.5/live"  # for the worker only
    assert "secret" not in repr(info)
    # The owner hears of it in its inbox.
    opened = SessionInbox(r, keys, info.owner).read()
    assert [(m.type, m.session_id) for m in opened][-1] == ("open", info.session_id)
    with pytest.raises(ValueError, match="kind"):
        create(arun, keys, settings, kind="file")


def test_sessions_opened_at_once_are_spread_over_the_workers(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"], capacity=8)
    register(r, keys, "w2", ["tiny"], capacity=8)

    async def eight(client: redis.asyncio.Redis) -> list[str]:
        directory = SessionDirectory(client, keys, settings)
        opened = await asyncio.gather(
            *(directory.create("live", "tiny", {"fraction": 0.25}) for _ in range(8))
        )
        return [info.owner for info in opened]

    owners = arun(eight)
    # Each placement saw the others: 4 and 4, not 8 on the lowest id.
    assert sorted(owners) == ["w1"] * 4 + ["w2"] * 4
    assert r.scard(keys.sessions) == 8


def test_frames_go_to_the_owners_inbox(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])
    info = create(arun, keys, settings)
    inbox = SessionInbox(r, keys, "w1")
    assert [m.type for m in inbox.read()] == ["open"]

    async def send(client: redis.asyncio.Redis) -> Any:
        directory = SessionDirectory(client, keys, settings)
        for index in range(3):
            await directory.send_frame(
                info.session_id, b"\xff\xd8jpeg%d" % index, 100.5 + index, index
            )
        await directory.set_budget(info.session_id, {"tokens": 20})
        return await directory.get(info.session_id)

    after = arun(send)
    messages = inbox.read(block_ms=100)
    frames = [m for m in messages if m.type == "frame"]
    assert [(m.index, m.data, m.received_s) for m in frames] == [
        (i, b"\xff\xd8jpeg%d" % i, 100.5 + i) for i in range(3)
    ]
    assert messages[-1].type == "budget" and messages[-1].budget == {"tokens": 20}
    assert all(m.session_id == info.session_id for m in messages)
    assert after.frames_received == 3 and after.budget == {"tokens": 20}
    assert inbox.read() == [] and r.xlen(keys.inbox("w1")) == 0  # read messages are deleted
    assert after.budget_seq == 1 and messages[-1].budget_seq == 1
    assert [m.budget_seq for m in frames] == [0, 0, 0]  # no change was sent before them


def test_budgets_are_numbered_and_frames_carry_the_count_sent_before_them(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])
    info = create(arun, keys, settings)
    inbox = SessionInbox(r, keys, "w1")
    inbox.read()

    async def send(client: redis.asyncio.Redis) -> None:
        directory = SessionDirectory(client, keys, settings)
        await directory.set_budget(info.session_id, {"tokens": 20})
        await directory.send_frame(info.session_id, b"a", 1.0, 0)
        await directory.set_budget(info.session_id, {"tokens": 8})
        await directory.send_frame(info.session_id, b"b", 2.0, 1)
        await directory.close(info.session_id)
        with pytest.raises(SessionClosedError):
            await directory.set_budget(info.session_id, {"tokens": 4})
        with pytest.raises(SessionNotFoundError):
            await directory.set_budget("nope", {"tokens": 4})

    arun(send)
    messages = inbox.read()
    assert [(m.type, m.budget_seq) for m in messages] == [
        ("budget", 1),
        ("frame", 1),
        ("budget", 2),
        ("frame", 2),
        ("close", None),
    ]
    assert inbox.budget_seqs([info.session_id, "nope"]) == {info.session_id: 2}
    assert inbox.get(info.session_id).budget == {"tokens": 8}  # type: ignore[union-attr]


def test_inbox_read_takes_at_most_count_and_waits_for_the_next_message(
    r: redis.Redis, keys: Keys
) -> None:
    inbox = SessionInbox(r, keys, "w1")
    for index in range(5):
        r.xadd(keys.inbox("w1"), {"type": "frame", "session": "s", "index": index, "data": b"x"})
    assert [m.index for m in inbox.read(count=3)] == [0, 1, 2]
    assert r.xlen(keys.inbox("w1")) == 2  # only what was read is deleted
    assert [m.index for m in inbox.read(count=3)] == [3, 4]
    assert r.ttl(keys.inbox("w1")) > 0
    timer = threading.Timer(
        0.2, r.xadd, (keys.inbox("w1"), {"type": "frame", "session": "s", "index": 5})
    )
    start = time.monotonic()
    timer.start()
    try:
        late = inbox.read(block_ms=5000)
    finally:
        timer.join()
    assert [m.index for m in late] == [5] and time.monotonic() - start < 4.0
    assert inbox.read(block_ms=50) == [] and r.xlen(keys.inbox("w1")) == 0


def test_unknown_and_closed_sessions_refuse_frames(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])
    info = create(arun, keys, settings)

    async def go(client: redis.asyncio.Redis) -> tuple[bool, bool, Any, Any]:
        directory = SessionDirectory(client, keys, settings)
        with pytest.raises(SessionNotFoundError):
            await directory.send_frame("nope", b"x", 0.0, 0)
        listed = [s.session_id for s in await directory.list()]
        closed = await directory.close(info.session_id)
        again = await directory.close(info.session_id)
        with pytest.raises(SessionClosedError):
            await directory.send_frame(info.session_id, b"x", 0.0, 0)
        with pytest.raises(SessionNotFoundError):
            await directory.close("nope")
        return closed, again, listed, (await directory.list(), await directory.get(info.session_id))

    closed, again, listed, (after, state) = arun(go)
    assert listed == [info.session_id] and after == []
    assert closed and not again
    assert state.state == "closed" and not state.open
    assert 0 < r.ttl(keys.session(info.session_id)) <= keys.session_ttl_s
    assert [m.type for m in SessionInbox(r, keys, "w1").read()] == ["open", "close"]


def test_owner_death_and_adoption(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    first = register(r, keys, "w1", ["tiny"])
    register(r, keys, "w2", ["tiny"])
    a = create(arun, keys, settings)  # w1
    b = create(arun, keys, settings)  # w2
    assert (a.owner, b.owner) == ("w1", "w2")
    w1, w2, w3 = (SessionInbox(r, keys, w) for w in ("w1", "w2", "w3"))
    assert w2.orphans() == []
    assert not w2.adopt(a.session_id, "w1")  # its owner is alive

    first.deregister()
    assert w2.orphans() == [a.session_id] and w2.owned() == [b.session_id]
    assert not w2.adopt(a.session_id, "someone-else")  # not its owner
    assert w2.adopt(a.session_id, "w1")
    assert not w3.adopt(a.session_id, "w1")  # one winner
    adopted = w2.get(a.session_id)
    assert adopted is not None and (adopted.owner, adopted.epoch) == ("w2", 1)
    assert w2.orphans() == [] and sorted(w2.owned()) == sorted([a.session_id, b.session_id])

    async def send(client: redis.asyncio.Redis) -> None:
        await SessionDirectory(client, keys, settings).send_frame(a.session_id, b"f", 1.0, 7)

    w2.read()
    arun(send)
    assert [(m.type, m.session_id, m.index) for m in w2.read()] == [("frame", a.session_id, 7)]
    assert w1.read() == []


def test_the_opener_is_recorded_and_outlives_an_adoption(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    first = register(r, keys, "w1", ["tiny"])
    register(r, keys, "w2", ["tiny"])
    mine = create(arun, keys, settings, opened_by="key:alice")  # w1
    nobodys = create(arun, keys, settings)  # w2: a record from before openers were kept
    assert (mine.opened_by, nobodys.opened_by) == ("key:alice", None)
    assert r.hget(keys.session(nobodys.session_id), "opened_by") is None

    async def listed(client: redis.asyncio.Redis) -> list[tuple[str, str | None]]:
        return [
            (i.session_id, i.opened_by)
            for i in await SessionDirectory(client, keys, settings).list()
        ]

    assert arun(listed) == [(mine.session_id, "key:alice"), (nobodys.session_id, None)]
    first.deregister()
    w2 = SessionInbox(r, keys, "w2")
    assert w2.adopt(mine.session_id, "w1")
    adopted = w2.get(mine.session_id)
    assert adopted is not None and (adopted.owner, adopted.opened_by) == ("w2", "key:alice")


def test_expired_owner_makes_orphans(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])  # beats once, then goes silent
    info = create(arun, keys, settings)
    survivor = SessionInbox(r, keys, "w2")
    deadline = time.monotonic() + 3.0
    while survivor.orphans() != [info.session_id]:
        assert time.monotonic() < deadline, "the silent owner never expired"
        time.sleep(0.05)
    assert survivor.adopt(info.session_id, "w1")
    assert not survivor.adopt(info.session_id, "w1")


def test_worker_updates_and_ends_a_session(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])
    info = create(arun, keys, settings, kind="rtsp", source="rtsp://10.0.0.5/live")
    inbox = SessionInbox(r, keys, "w1")
    assert inbox.update(
        info.session_id, state="running", frames_processed=12, source_health={"ok": True}
    )
    running = inbox.get(info.session_id)
    assert running is not None
    assert (running.state, running.frames_processed, running.source_health) == (
        "running",
        12,
        {"ok": True},
    )
    assert not inbox.update("gone", state="running")
    assert not r.exists(keys.session("gone"))

    assert inbox.update(info.session_id, state="failed")
    assert inbox.owned() == [] and inbox.orphans() == []
    assert not r.sismember(keys.sessions, info.session_id)
    assert 0 < r.ttl(keys.session(info.session_id)) <= keys.session_ttl_s
    assert not inbox.adopt(info.session_id, "w1")  # an ended session is nobody's to adopt


def test_an_adopter_takes_over_the_dead_owners_waiting_frames(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])  # beats once, then goes silent
    a = create(arun, keys, settings)
    b = create(arun, keys, settings)

    async def send(client: redis.asyncio.Redis) -> None:
        directory = SessionDirectory(client, keys, settings)
        for index in range(300):  # more than one page of the inbox
            await directory.send_frame(a.session_id, b"a%d" % index, 1.0, index)
        for index in range(5):
            await directory.send_frame(b.session_id, b"b%d" % index, 1.0, index)

    arun(send)
    survivor = SessionInbox(r, keys, "w2")
    deadline = time.monotonic() + 3.0
    while sorted(survivor.orphans()) != sorted([a.session_id, b.session_id]):
        assert time.monotonic() < deadline, "the silent owner never expired"
        time.sleep(0.05)
    adoption = survivor.adopt(a.session_id, "w1")
    assert adoption is not None and adoption.frames_received == 300
    taken = survivor.take_frames("w1", [a.session_id])
    assert [m.index for m in taken[a.session_id]] == list(range(300))
    assert taken[a.session_id][7].data == b"a7"
    assert adoption.unaccounted(len(taken[a.session_id])) == 0
    assert adoption.unaccounted(290) == 10  # ten the dead owner took and never ran: lost
    # The other session's frames (and the open messages) stay for whoever takes it.
    left = [m for m in SessionInbox(r, keys, "w1").read(count=1000) if m.type == "frame"]
    assert [m.data for m in left] == [b"b%d" % i for i in range(5)]


def test_stride_count_and_ended_read_the_session_records(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    register(r, keys, "w1", ["tiny"])
    plain = create(arun, keys, settings)
    strided = create(arun, keys, settings, stride=3)
    assert (strided.stride, plain.stride) == (3, None)  # as created, before any read

    async def stride(directory: SessionDirectory, session_id: str) -> int | None:
        info = await directory.get(session_id)
        assert info is not None
        return info.stride

    async def go(client: redis.asyncio.Redis) -> list[Any]:
        directory = SessionDirectory(client, keys, settings)
        before = [
            await stride(directory, strided.session_id),
            await stride(directory, plain.session_id),
            [info.stride for info in await directory.list()],
            await directory.count(),
            await directory.ended(plain.session_id),
            await directory.ended("nope"),
        ]
        await directory.close(plain.session_id)
        return [*before, await directory.ended(plain.session_id)]

    assert arun(go) == [3, None, [None, 3], 2, False, True, True]
    r.hset(keys.session(strided.session_id), "stride", "x")  # unreadable: as if none
    reread = arun(lambda c: SessionDirectory(c, keys, settings).get(strided.session_id))
    assert reread is not None and reread.stride is None
