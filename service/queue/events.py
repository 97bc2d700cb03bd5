"""A session's event stream: the owner worker publishes (sync), gateways read and resume (asyncio).

Each session has one stream (field ``event``, JSON) bounded to about ``events_maxlen`` entries and
kept ``session_ttl_s`` after the last event. Stream ids are the event ids: a client that reconnects
with the last id it saw reads on from the next event, whichever gateway it reaches.
"""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.asyncio

from service.keys import Keys
from service.queue._codec import dumps, text

START = "0-0"
"""Read from the first event still kept."""

UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
"""Lua: HSET the fields in ARGV only when the hash exists, so a write for an expired session does
not bring back a hash without a TTL."""


PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'last_event',
             string.sub(ARGV[1], 1, -2) .. ',"event_id":"' .. id .. '"}')
end
return id
"""
"""Lua: one event onto a session's stream (KEYS[1], trimmed to about ARGV[2] entries, kept ARGV[3]
seconds); with ARGV[4] ``1`` (a labels event) it also becomes the session hash's (KEYS[2])
``last_event``, with its ``event_id`` added as the JSON object's last field, when the hash
exists. One round trip, and several pipelined in one (:meth:`EventWriter.publish_many`)."""


class EventWriter:
    """Publishes a session's events, for its owner worker (blocking client)."""

    def __init__(self, redis: redis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._update = redis.register_script(UPDATE_IF_EXISTS)
        self._publish = redis.register_script(PUBLISH)

    def publish(self, session_id: str, event: dict[str, Any]) -> str:
        """Appends an event to the session's stream; returns its id.

        A ``labels`` event also becomes the session's ``last_event`` (with its ``event_id``),
        which ``GET /v1/streams/{id}`` shows.
        """
        return text(self._publish(**self._call(session_id, event)))

    def publish_many(self, events: list[tuple[str, dict[str, Any]]], pipe: Any = None) -> None:
        """Publishes ``(session id, event)`` pairs as :meth:`publish` does, in one round trip.

        Args:
            events: The events, each after the previous one of its session.
            pipe: A pipeline of this client to add them to (its caller executes it); ``None``:
                a pipeline of their own, executed here.
        """
        if not events:
            return
        if pipe is not None:
            # EVAL with the script's text: a registered script in a pipeline costs redis-py a
            # SCRIPT EXISTS round trip before it.
            for session_id, event in events:
                call = self._call(session_id, event)
                pipe.eval(PUBLISH, 2, *call["keys"], *call["args"])
            return
        with self.redis.pipeline(transaction=False) as own:
            self.publish_many(events, own)
            own.execute()

    def _call(self, session_id: str, event: dict[str, Any]) -> dict[str, Any]:
        labels = "1" if event.get("type") == "labels" and event else "0"
        return {
            "keys": [self.keys.events(session_id), self.keys.session(session_id)],
            "args": [dumps(event), self.keys.events_maxlen, self.keys.session_ttl_s, labels],
        }


def parse_entry(entry_id: Any, fields: dict[Any, Any]) -> tuple[str, dict[str, Any]]:
    """One stream entry as ``(event id, event)``, the id also set as the event's ``event_id``; an
    unreadable entry becomes an ``error`` event rather than failing the relay."""
    event_id = text(entry_id)
    raw = fields.get(b"event", fields.get("event"))
    try:
        event = json.loads(text(raw)) if raw is not None else {}
    except ValueError:
        event = {"type": "error", "code": "bad_event", "message": "unreadable event"}
    if not isinstance(event, dict):
        event = {"value": event}
    event["event_id"] = event_id
    return event_id, event


def parse_xread(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """An ``XREAD`` reply (RESP2 list or RESP3 dict) as ``(stream key, events)`` pairs, each
    stream's events oldest first as :func:`parse_entry` gives them."""
    streams = reply.items() if isinstance(reply, dict) else (reply or [])
    return [
        (text(stream), [parse_entry(entry_id, fields) for entry_id, fields in items])
        for stream, items in streams
    ]


def id_order(event_id: str) -> tuple[int, int]:
    """An event id as a sortable pair (``"1712-3"`` -> ``(1712, 3)``; ``"1712"`` counts as
    ``1712-0``, as Redis reads it).

    Raises:
        ValueError: Not an id of that form (``$``, ``+``, ``-`` are not ids).
    """
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class EventReader:
    """Reads sessions' events for the gateway (asyncio client)."""

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(
        self,
        session_id: str,
        after: str = START,
        block_ms: int | None = None,
        count: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Events after the id ``after``, oldest first, each with ``event_id`` set in it.

        Args:
            session_id: The session.
            after: The last event id the caller saw; ``"0-0"``: from the oldest kept.
            block_ms: How long to wait when there is none yet; ``None`` or 0: no wait.
            count: Most events returned.
        """
        reply: Any = await self.redis.xread(
            {self.keys.events(session_id): after}, count=count, block=block_ms or None
        )
        return [event for _stream, events in parse_xread(reply) for event in events]

    async def last_id(self, session_id: str) -> str | None:
        """Id of the newest event, for a client that wants only what comes next."""
        reply: Any = await self.redis.xrevrange(self.keys.events(session_id), count=1)
        return text(reply[0][0]) if reply else None
