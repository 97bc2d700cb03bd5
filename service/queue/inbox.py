"""The owner worker's side of sessions: its inbox, its sessions' events and state, adoption.

A worker reads the messages the gateways route to it (``open``, ``frame``, ``budget``, ``close``),
publishes its sessions' events and updates their hashes. When an owner's heartbeat expires, its
open sessions are orphans: a live worker adopts one with an atomic compare-and-set of ``owner``
that bumps ``epoch``, so exactly one worker wins; from then on the gateways' frames go to it. The
adopter takes over the frames still waiting in the dead owner's inbox (:meth:`take_frames`), and
the counters read at the moment of adoption say how many frames the dead owner took and never
accounted for: nothing is lost silently.

A live session whose lease lapsed (its gateway connection is gone) is ended, not adopted
(:meth:`leases`, :meth:`end`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from service.keys import INBOX_TTL_S, Keys
from service.queue._codec import as_float, as_int, as_json, text, text_hash, to_field
from service.queue.events import UPDATE_IF_EXISTS, EventWriter
from service.queue.sessions import FINAL_STATES, SessionInfo, end_session, session_info

# Entries read at once when taking over a dead owner's inbox.
TAKE_PAGE = 256

# KEYS: session, the dead owner's heartbeat. ARGV: dead owner, new owner. Returns the new epoch
# and the frame counters as they stood when the owner changed (frames counted as received until
# then went to the dead owner's inbox), or 0.
_ADOPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('HMGET', KEYS[1], 'owner', 'state')
if cur[1] ~= ARGV[1] then return 0 end
if cur[2] == 'closed' or cur[2] == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local counts = redis.call('HMGET', KEYS[1], 'frames_received', 'frames_processed',
                          'frames_dropped')
return {epoch, counts[1] or '0', counts[2] or '0', counts[3] or '0'}
"""

# KEYS: the inbox. ARGV: the last entry id read, most entries, the inbox's TTL. The entries after
# that id, deleted as they are read: one round trip for the worker's hot loop.
_TAKE = """
local reply = redis.call('XREAD', 'COUNT', ARGV[2], 'STREAMS', KEYS[1], ARGV[1])
if not reply then return {} end
local entries = reply[1][2]
local ids = {}
for i, entry in ipairs(entries) do ids[i] = entry[1] end
if #ids > 0 then
  redis.call('XDEL', KEYS[1], unpack(ids))
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return entries
"""


@dataclass(frozen=True)
class Adoption:
    """A session taken over from a dead owner, with its counters at that moment.

    Attributes:
        epoch: The session's new epoch.
        frames_received: Frames the gateways had routed to it.
        frames_processed: Frames its owners had recorded as processed.
        frames_dropped: Frames its owners had recorded as dropped.
    """

    epoch: int
    frames_received: int
    frames_processed: int
    frames_dropped: int

    def unaccounted(self, recovered: int, processed: int = 0) -> int:
        """Frames routed to the dead owner that it neither processed nor dropped, and that are
        not among the ``recovered`` still waiting in its inbox: they are lost.

        ``processed``: frames the new owner counts as processed already, when it knows more
        than the counter (a labels event published just before a death that kept its counters
        from being written).
        """
        done = max(self.frames_processed, processed)
        return max(0, self.frames_received - done - self.frames_dropped - recovered)


@dataclass(frozen=True)
class SessionMessage:
    """One message from a worker's inbox.

    Attributes:
        entry_id: The inbox entry.
        type: ``open``, ``frame``, ``budget`` or ``close``.
        session_id: The session it is for.
        data: The frame's bytes (frames).
        index: The frame's index as the gateway numbered it (frames).
        received_s: When the gateway received the frame, unix seconds (frames).
        budget: The new budget (budgets).
        budget_seq: Budget changes sent before this frame (frames), or this budget's number
            (budgets); ``None`` in messages from gateways older than the numbering.
    """

    entry_id: str
    type: str
    session_id: str
    data: bytes | None = None
    index: int | None = None
    received_s: float | None = None
    budget: dict[str, Any] | None = None
    budget_seq: int | None = None


def _message(entry_id: Any, fields: dict[bytes, bytes]) -> SessionMessage:
    def get(name: str) -> str | None:
        value = fields.get(name.encode())
        return None if value is None else text(value)

    index = get("index")
    received = get("received")
    budget = get("budget")
    seq = get("budget_seq")
    return SessionMessage(
        entry_id=text(entry_id),
        type=get("type") or "",
        session_id=get("session") or "",
        data=fields.get(b"data"),
        index=as_int(index) if index is not None else None,
        received_s=as_float(received) if received is not None else None,
        budget=as_json(budget, {}) if budget is not None else None,
        budget_seq=as_int(seq) if seq is not None else None,
    )


class SessionInbox:
    """A worker's side of sessions (blocking client): its inbox, events and owned sessions.

    Args:
        redis: A sync client (raw bytes).
        keys: Key names, TTLs and ``events_maxlen``.
        worker_id: This worker's id.
    """

    def __init__(self, redis: redis.Redis, keys: Keys, worker_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.inbox = keys.inbox(worker_id)
        self.events = EventWriter(redis, keys)
        self._last_id = "0-0"
        self._update = redis.register_script(UPDATE_IF_EXISTS)
        self._adopt = redis.register_script(_ADOPT)
        self._take_script = redis.register_script(_TAKE)

    def read(self, block_ms: int | None = None, count: int = 100) -> list[SessionMessage]:
        """The next messages of this worker's inbox, oldest first; they are deleted once read.

        Args:
            block_ms: How long to wait when there is none; ``None`` or 0: no wait.
            count: Most messages returned.
        """
        messages = self._take(count)
        if messages or not block_ms:
            return messages
        # Nothing waiting: wait for the next entry, then take what came.
        self.redis.xread({self.inbox: self._last_id}, count=1, block=block_ms)
        return self._take(count)

    def _take(self, count: int) -> list[SessionMessage]:
        """Up to ``count`` messages after the last one read, deleted as they are read."""
        reply: Any = self._take_script(keys=[self.inbox], args=[self._last_id, count, INBOX_TTL_S])
        messages = [
            _message(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
            for entry_id, flat in reply or []
        ]
        if messages:
            self._last_id = messages[-1].entry_id
        return messages

    def take_frames(
        self, dead_owner: str, session_ids: Iterable[str]
    ) -> dict[str, list[SessionMessage]]:
        """Takes the frames of ``session_ids`` still waiting in a dead owner's inbox (deleting
        them there), oldest first, so the sessions' new owner runs them."""
        wanted = set(session_ids)
        inbox = self.keys.inbox(dead_owner)
        taken: dict[str, list[SessionMessage]] = {}
        start = "-"
        while True:  # in pages, so a full inbox of large frames is never one reply
            entries: Any = self.redis.xrange(inbox, min=start, count=TAKE_PAGE)
            for entry_id, fields in entries:
                message = _message(entry_id, fields)
                if message.type == "frame" and message.session_id in wanted:
                    taken.setdefault(message.session_id, []).append(message)
            if len(entries) < TAKE_PAGE:
                break
            start = "(" + text(entries[-1][0])
        ids = [m.entry_id for messages in taken.values() for m in messages]
        if ids:
            self.redis.xdel(inbox, *ids)
        return taken

    def publish(self, session_id: str, event: dict[str, Any]) -> str:
        """Appends an event to the session's stream; returns its id (see :class:`EventWriter`)."""
        return self.events.publish(session_id, event)

    def get(self, session_id: str) -> SessionInfo | None:
        """The session, ``None`` when unknown or expired."""
        raw = self.redis.hgetall(self.keys.session(session_id))
        return session_info(session_id, text_hash(raw)) if raw else None

    def update(self, session_id: str, **fields: Any) -> bool:
        """Sets fields of the session hash (dicts and lists as JSON); ``False`` if it is gone.

        Setting ``state`` to ``failed`` or ``closed`` also ends the session: it leaves the open set
        and its hash and events expire after ``session_ttl_s``.
        """
        if not fields:
            return bool(self.redis.exists(self.keys.session(session_id)))
        args = [item for k, v in fields.items() for item in (k, to_field(v))]
        if not self._update(keys=[self.keys.session(session_id)], args=args):
            return False
        if fields.get("state") in FINAL_STATES:
            with self.redis.pipeline(transaction=True) as pipe:
                end_session(pipe, self.keys, session_id, str(fields["state"]))
                pipe.execute()
        return True

    def update_many(self, updates: dict[str, dict[str, Any]]) -> None:
        """Sets fields of several session hashes in one round trip (hashes that are gone stay
        gone); no state changes here."""
        if not updates:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            self._update_all(pipe, updates)
            pipe.execute()

    def publish_step(
        self, events: list[tuple[str, dict[str, Any]]], updates: dict[str, dict[str, Any]]
    ) -> None:
        """Publishes a step's events (``(session id, event)``, as :meth:`publish`) and sets
        fields of its sessions' hashes (as :meth:`update_many`), all in one round trip."""
        if not events and not updates:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            self.events.publish_many(events, pipe)
            self._update_all(pipe, updates)
            pipe.execute()

    def _update_all(self, pipe: Any, updates: dict[str, dict[str, Any]]) -> None:
        # EVAL with the script's text, not a registered script: redis-py checks a pipeline's
        # registered scripts with SCRIPT EXISTS first, one more round trip per step.
        for session_id, fields in updates.items():
            args = [item for k, v in fields.items() for item in (k, to_field(v))]
            pipe.eval(UPDATE_IF_EXISTS, 1, self.keys.session(session_id), *args)

    def end(self, session_id: str, state: str, reason: str) -> None:
        """Ends a session: final ``state`` and why, out of the open set, kept ``session_ttl_s``."""
        if state not in FINAL_STATES:
            raise ValueError(f"a session ends as one of {sorted(FINAL_STATES)}, not {state!r}")
        if not self.redis.exists(self.keys.session(session_id)):
            return
        with self.redis.pipeline(transaction=True) as pipe:
            end_session(pipe, self.keys, session_id, state, reason)
            pipe.execute()

    def leases(self, session_ids: Iterable[str]) -> set[str]:
        """Those of ``session_ids`` whose lease is held (renewed by their gateway connection)."""
        ids = list(session_ids)
        if not ids:
            return set()
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.exists(self.keys.lease(session_id))
            held = pipe.execute()
        return {session_id for session_id, ok in zip(ids, held, strict=True) if ok}

    def _hash_fields(self, ids: list[str], *names: str) -> list[list[bytes | None]]:
        """The named fields of each session's hash (``None`` where absent), in one round trip."""
        if not ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hmget(self.keys.session(session_id), list(names))
            return list(pipe.execute())

    def budget_seqs(self, session_ids: Iterable[str]) -> dict[str, int]:
        """``session id -> budget_seq`` (budget changes sent so far) in one round trip; sessions
        whose record is gone are left out."""
        ids = list(session_ids)
        rows = self._hash_fields(ids, "model", "budget_seq")
        return {
            session_id: as_int(None if seq is None else text(seq))
            for session_id, (model, seq) in zip(ids, rows, strict=True)
            if model is not None
        }

    def owners(self, session_ids: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """``session id -> (owner, state)`` of ``session_ids`` in one round trip; ``(None, None)``
        for a session whose record is gone."""
        ids = list(session_ids)
        replies = self._hash_fields(ids, "owner", "state")
        return {
            session_id: (
                None if owner is None else text(owner),
                None if state is None else text(state),
            )
            for session_id, (owner, state) in zip(ids, replies, strict=True)
        }

    def open_sessions(self) -> list[tuple[str, str]]:
        """(session id, owner) of every open session: one listing that :meth:`owned` and
        :meth:`orphans` can share."""
        ids = sorted(text(m) for m in self.redis.smembers(self.keys.sessions))
        if not ids:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hmget(self.keys.session(session_id), ["owner", "state"])
            replies = pipe.execute()
        return [
            (session_id, text(owner))
            for session_id, (owner, state) in zip(ids, replies, strict=True)
            if owner is not None and text(state) not in FINAL_STATES
        ]

    def owned(self, listing: list[tuple[str, str]] | None = None) -> list[str]:
        """Open sessions this worker owns (from ``listing``, an :meth:`open_sessions` reply,
        when given)."""
        sessions = self.open_sessions() if listing is None else listing
        return [session_id for session_id, owner in sessions if owner == self.worker_id]

    def orphans(self, listing: list[tuple[str, str]] | None = None) -> list[str]:
        """Open sessions whose owner's heartbeat expired (from ``listing``, an
        :meth:`open_sessions` reply, when given)."""
        sessions = self.open_sessions() if listing is None else listing
        owners = sorted({owner for _, owner in sessions})
        if not owners:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.exists(self.keys.worker(owner))
            alive = {owner for owner, ok in zip(owners, pipe.execute(), strict=True) if ok}
        return [session_id for session_id, owner in sessions if owner not in alive]

    def adopt(self, session_id: str, dead_owner: str) -> Adoption | None:
        """Takes over a session from a dead owner; exactly one caller wins.

        Fails (``None``) when the session is no longer owned by ``dead_owner`` (someone adopted
        it first), when ``dead_owner`` is alive again, or when the session has ended. Success
        bumps ``epoch`` and tells the counters at that moment.
        """
        reply: Any = self._adopt(
            keys=[self.keys.session(session_id), self.keys.worker(dead_owner)],
            args=[dead_owner, self.worker_id],
        )
        if not reply:
            return None
        epoch, received, processed, dropped = (as_int(text(v)) for v in reply)
        return Adoption(epoch, received, processed, dropped)
