"""One reader per gateway for every session's events its sockets follow (asyncio).

A blocking ``XREAD`` holds its Redis connection for the whole wait, so one blocking read per
WebSocket costs one Redis connection per socket: a gateway with N cameras held N connections,
against Redis' ``maxclients`` shared by every gateway and worker. :class:`EventFanout` instead
runs one task that issues one ``XREAD BLOCK`` over the event streams of every session subscribed
on this gateway and hands each entry to that session's subscribers, so the connections used for
events are one per gateway (one per ``MAX_STREAMS`` streams followed), whatever the socket count.

Each :class:`Subscription` keeps its own cursor (the last event id it queued), so subscribers of
one session may start from different ids. A subscription is either *catching up* or *live*:

- Catching up, its own task reads its stream alone with a non-blocking ``XREAD`` from its cursor
  (a short call on the shared pool, never a held connection; at most ``OWN_READS`` at once, so a
  burst of new sockets does not grow the pool by one connection each). That is how a new
  subscription reads what was written before it subscribed, from ``"0-0"`` or from a given id,
  at once. When that read comes back short of ``count`` it has caught up and turns live.
- Live, the shared loop reads its stream from the lowest cursor of the session's live
  subscriptions, and gives each one only the entries after its own cursor, and only when the read
  started at or before that cursor (a subscription that joined behind the read waits for the next
  round), so each gets every event after ``after`` once, in order, with no gap.

Waking: the shared read blocks at most ``block_ms`` (200 ms), so a subscription that turns live
while it waits is read from within that bound (its catch-up already gave it what was there; its
first event written after that came 210-290 ms later on the loaded 2-core test machine, the
next ones at once); an idle fan-out (no subscription) waits on an event, not on Redis.

A slow subscriber does not stall the others: its queue is bounded (``queue_size``), and when it
is full the subscription drops back to catching up at its cursor. Nothing is dropped: it reads
on from Redis at its own pace once it has drained its queue, as each socket's own blocking read
did before, and as then only the stream's own trim (``events_maxlen``) bounds how far behind it
may fall. Live subscriptions of the same session are not held back by it (the shared read starts
from the live cursors only).

Redis errors (a reset, a restart) never end the loop: it logs once per outage, backs off
(``BACKOFF_S`` doubling up to ``MAX_BACKOFF_S``) and reads on from the same cursors. A
subscription's own catch-up read raises its error to its caller, as ``EventReader.read`` does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio

from service.keys import Keys
from service.queue.events import EventReader, id_order, parse_xread

log = logging.getLogger(__name__)

BLOCK_MS = 200
"""Longest wait of the shared read; also how long a newly live subscription may wait to join."""
COUNT = 100
"""Most entries per stream per read."""
MAX_STREAMS = 1000
"""Most streams in one ``XREAD``; more are read in several, at once (one connection each)."""
QUEUE_SIZE = 512
"""Events a subscription may hold unread before it drops back to catching up by itself."""
OWN_READS = 8
"""Catch-up reads at once: a pool opens a connection per concurrent call and keeps it, so a burst
of new subscriptions must not each take one."""
BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0

Event = tuple[str, dict[str, Any]]


class Subscription:
    """One follower of one session's events; read it with :meth:`get`.

    Attributes:
        session_id: The session.
        cursor: Id of the last event queued for it (what it resumes after).
    """

    def __init__(self, fanout: EventFanout, session_id: str, after: str) -> None:
        self.session_id = session_id
        self.cursor = after
        self._order = id_order(after)  # the cursor as a pair, compared on every delivery
        self._fanout = fanout
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self.live = False  # read by the shared loop (True) or by itself (False)

    async def get(self, timeout_s: float) -> list[Event]:
        """The events queued since the last call, oldest first; waits up to ``timeout_s`` for
        one when there is none. ``[]``: none came within that time.

        Raises:
            redis.RedisError: Its own catch-up read failed (Redis unreachable).
        """
        if not self._queue and not self.live:
            caught_up = await self._catch_up()
            if caught_up:
                return caught_up
        if not self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout_s)
        events = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        return events

    async def rest(self) -> list[Event]:
        """Every event after its cursor now, queued or still only in Redis, read without
        waiting: for a relay that ends once its session has, so that the events written before
        the session's final state are sent too. The shared loop feeds it no more.

        Raises:
            redis.RedisError: The read failed.
        """
        self.live = False
        events = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        while True:
            more = await self._read_own()
            events += more
            if len(more) < self._fanout.count:
                return events

    async def _catch_up(self) -> list[Event]:
        """Reads its stream alone from its cursor; turns live once nothing more is waiting."""
        events = await self._read_own()
        if len(events) < self._fanout.count:
            self.live = True
            self._fanout.wake()
        return events

    async def _read_own(self) -> list[Event]:
        """Up to ``count`` events after its cursor, by a non-blocking read of its stream alone;
        the cursor moves past them."""
        fanout = self._fanout
        async with fanout._own_reads:
            events = await fanout.reader.read(self.session_id, self.cursor, count=fanout.count)
        if events:
            self.cursor = events[-1][0]
            self._order = id_order(self.cursor)
        return events

    def _offer(self, read_from: tuple[int, int], events: list[Event]) -> None:
        """Queues the events after its cursor, if the read that found them covers it."""
        if not self.live or read_from > self._order:
            return  # it joined behind this read: the next round reads from its cursor
        queued = False
        for event_id, event in events:
            order = id_order(event_id)
            if order <= self._order:
                continue
            if len(self._queue) >= self._fanout.queue_size:
                self.live = False  # full: it reads on by itself from its cursor once drained
                break
            self._queue.append((event_id, dict(event)))  # a copy each: a relay may add to it
            self.cursor, self._order = event_id, order
            queued = True
        if queued:
            self._ready.set()


class EventFanout:
    """One blocking reader of the event streams of every session subscribed in this process.

    Run it with ``async with EventFanout(...) as fanout`` (or :meth:`start` and :meth:`aclose`);
    follow a session with ``async with fanout.subscribe(session_id, after) as sub``.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        keys: Keys,
        *,
        block_ms: int = BLOCK_MS,
        count: int = COUNT,
        max_streams: int = MAX_STREAMS,
        queue_size: int = QUEUE_SIZE,
        own_reads: int = OWN_READS,
    ) -> None:
        if block_ms <= 0:  # BLOCK 0 waits for ever: a new subscription could wait as long
            raise ValueError("block_ms must be positive")
        self.redis = redis
        self.keys = keys
        self.reader = EventReader(redis, keys)  # a subscription's own, non-blocking reads
        self.block_ms = block_ms
        self.count = count
        self.max_streams = max_streams
        self.queue_size = max(queue_size, count)
        self._subs: dict[str, set[Subscription]] = {}
        self._wake = asyncio.Event()
        self._own_reads = asyncio.Semaphore(own_reads)
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # XREAD calls of the shared loop, for tests and debugging

    def start(self) -> None:
        """Starts the shared read loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-fanout")

    async def __aenter__(self) -> EventFanout:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops the loop; subscriptions still open get nothing more."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def subscriptions(self) -> int:
        """Subscriptions open now."""
        return sum(len(subs) for subs in self._subs.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str, after: str) -> AsyncIterator[Subscription]:
        """Follows ``session_id`` from after the event id ``after`` (``"0-0"``: the oldest kept)
        while the block runs.

        Raises:
            ValueError: ``after`` is not an event id (``$`` is not: take ``EventReader.last_id``).
        """
        sub = Subscription(self, session_id, after)
        self._subs.setdefault(session_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(session_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[session_id]

    def wake(self) -> None:
        """Lets an idle loop know there is a live subscription to read for."""
        self._wake.set()

    def _cursors(self) -> dict[str, tuple[str, str, tuple[int, int]]]:
        """Stream key -> (session, id to read after, that id as a pair), from the lowest cursor
        of each session's live subscriptions."""
        cursors: dict[str, tuple[str, str, tuple[int, int]]] = {}
        for session_id, subs in self._subs.items():
            live = [sub for sub in subs if sub.live]
            if live:
                low = min(live, key=lambda sub: sub._order)
                cursors[self.keys.events(session_id)] = (session_id, low.cursor, low._order)
        return cursors

    async def _run(self) -> None:
        backoff = BACKOFF_S
        failing = False
        while True:
            cursors = self._cursors()
            if not cursors:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                replies = await self._read(cursors)
            except (redis.RedisError, OSError) as exc:
                if not failing:
                    log.warning("event fan-out: redis error, retrying: %s", exc)
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except Exception:  # a bug must not silence every socket of the gateway for good
                log.exception("event fan-out: read failed, retrying")
                await asyncio.sleep(MAX_BACKOFF_S)
                continue
            if failing:
                log.info("event fan-out: reading again")
            failing, backoff = False, BACKOFF_S
            for key, events in replies:
                session_id, _after, read_from = cursors[key]
                for sub in list(self._subs.get(session_id, ())):
                    sub._offer(read_from, events)

    async def _read(
        self, cursors: dict[str, tuple[str, str, tuple[int, int]]]
    ) -> list[tuple[str, list[Event]]]:
        """One blocking ``XREAD`` per ``max_streams`` streams, all at once."""
        streams = {key: after for key, (_session, after, _order) in cursors.items()}
        keys = list(streams)
        chunks = [keys[i : i + self.max_streams] for i in range(0, len(keys), self.max_streams)]
        self.reads += len(chunks)
        replies = await asyncio.gather(
            *(
                self.redis.xread(
                    {key: streams[key] for key in chunk}, count=self.count, block=self.block_ms
                )
                for chunk in chunks
            )
        )
        return [pair for reply in replies for pair in parse_xread(reply)]
