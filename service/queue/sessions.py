"""The gateway's side of sessions: open them on a worker, route their frames, close them.

A session's Eventful caches live on one worker, its owner, recorded in the session hash. The
gateway sends every frame, budget change and close to the current owner's inbox stream (read by
:class:`service.queue.inbox.SessionInbox`), looking the owner up each time, so frames follow a
session that another worker adopted.

Inbox messages (stream fields): ``type`` (``open``, ``frame``, ``budget``, ``close``), ``session``;
frames add ``data``, ``index``, ``received`` and ``budget_seq`` (budget changes sent before the
frame); budgets add ``budget`` (JSON) and ``budget_seq`` (its number).

Sessions cannot leak: a live session is held by a lease (``Keys.lease``, ``session_lease_s``) that
the gateway connection holding it renews (:meth:`SessionDirectory.renew`); when that gateway or
its socket is gone the lease lapses and the owner worker ends the session and frees its slot. An
RTSP session is held by its owner worker's heartbeat instead: it moves to another worker when the
owner dies and ends only when deleted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from service.ingest.url_policy import redact
from service.keys import INBOX_MAXLEN, INBOX_TTL_S, Keys
from service.limits import MAX_STRIDE
from service.queue._codec import as_float, as_int, as_json, dumps, now, text, text_hash, to_field
from service.queue.errors import NoWorkerError, SessionClosedError, SessionNotFoundError
from service.queue.workers import WorkerDirectory, WorkerInfo
from service.settings import Settings

# KEYS: session. ARGV: inbox key prefix and suffix (the owner's id goes between), inbox maxlen,
# inbox ttl, frame fields (session, data, index, received). Reads the owner, routes the frame to
# its inbox and counts it in one step, so an adoption (also a script) sees every frame either
# counted and in the old owner's inbox, or routed to the new owner. The frame carries the number of
# budget changes sent before it, so an owner whose budget message was trimmed away sees one is
# missing and reads the budget from the hash.
_SEND_FRAME = """
local cur = redis.call('HMGET', KEYS[1], 'owner', 'state', 'budget_seq')
if not cur[1] then return {'missing', ''} end
if cur[2] == 'closed' or cur[2] == 'failed' then return {'final', cur[2]} end
local inbox = ARGV[1] .. cur[1] .. ARGV[2]
redis.call('XADD', inbox, 'MAXLEN', '~', ARGV[3], '*', 'type', 'frame', 'session', ARGV[5],
           'data', ARGV[6], 'index', ARGV[7], 'received', ARGV[8], 'budget_seq', cur[3] or '0')
redis.call('EXPIRE', inbox, ARGV[4])
redis.call('HINCRBY', KEYS[1], 'frames_received', 1)
return {'ok', cur[1]}
"""

# KEYS: session. ARGV: inbox key prefix and suffix, inbox maxlen, inbox ttl, session id, budget
# (JSON). Records the budget, numbers it and routes it to the current owner in one step, so a
# frame sent after it always carries its number and reaches the same inbox behind it.
_SEND_BUDGET = """
local cur = redis.call('HMGET', KEYS[1], 'owner', 'state')
if not cur[1] then return {'missing', ''} end
if cur[2] == 'closed' or cur[2] == 'failed' then return {'final', cur[2]} end
redis.call('HSET', KEYS[1], 'budget', ARGV[6])
local seq = redis.call('HINCRBY', KEYS[1], 'budget_seq', 1)
local inbox = ARGV[1] .. cur[1] .. ARGV[2]
redis.call('XADD', inbox, 'MAXLEN', '~', ARGV[3], '*', 'type', 'budget', 'session', ARGV[5],
           'budget', ARGV[6], 'budget_seq', seq)
redis.call('EXPIRE', inbox, ARGV[4])
return {'ok', tostring(seq)}
"""

# Tries of the optimistic placement before a session is refused as ``no_worker``.
PLACEMENT_ATTEMPTS = 50

KINDS = ("live", "rtsp")
STATES = ("opening", "running", "reconnecting", "failed", "closed")
FINAL_STATES = frozenset({"failed", "closed"})
"""States in which a session takes no more messages and is no longer open."""


@dataclass(frozen=True)
class SessionInfo:
    """A session as recorded in Redis.

    Attributes:
        session_id: The session's id.
        kind: ``live`` (WebSocket frames) or ``rtsp``.
        model: Model it runs.
        owner: Worker that runs it.
        budget: Compute budget, as sent (``{"fraction": 0.25}``...).
        state: ``opening``, ``running``, ``reconnecting``, ``failed`` or ``closed``.
        source: RTSP URL with its password removed (safe to show), ``None`` for live sessions.
        created: Opening time, unix seconds.
        frames_received: Frames the gateways routed to it.
        frames_processed: Frames its worker ran.
        frames_dropped: Frames its worker dropped (backlog full).
        last_event: The latest labels event, or ``None``.
        source_health: RTSP reader status, or ``None``.
        epoch: Owner changes so far.
        frames_lost: Frames routed to an owner that died before it processed them (reported in
            the ``moved`` event of the worker that took the session over).
        ended_reason: Why the session ended (``closed``, ``lease_expired``, ``idle``...), once
            it has.
        opened_by: Identity of the caller that opened it (``key:{name}``, or ``addr:{ip}`` with
            auth off); ``None`` in records written before it was kept. The gateway shows a
            session only to its opener (and to admin keys) when auth is on.
        source_url: The RTSP URL as given, credentials included, for the worker that reads it;
            never show it to clients.
        stride: Labels every ``stride`` frames, as opened; ``None`` when opened without one (the
            worker's default) or when the stored field is unreadable or out of range.
        budget_seq: Budget changes sent so far (``budget`` is the last one's); 0 while the
            session keeps its first budget.
    """

    session_id: str
    kind: str
    model: str
    owner: str
    budget: dict[str, Any]
    state: str
    source: str | None
    created: float
    frames_received: int
    frames_processed: int
    frames_dropped: int
    last_event: dict[str, Any] | None
    source_health: dict[str, Any] | None
    epoch: int
    frames_lost: int = 0
    ended_reason: str | None = None
    opened_by: str | None = None
    source_url: str | None = field(default=None, repr=False)
    stride: int | None = None
    budget_seq: int = 0

    @property
    def open(self) -> bool:
        """Whether it still takes frames and messages."""
        return self.state not in FINAL_STATES


def session_info(session_id: str, fields: dict[str, str]) -> SessionInfo:
    return SessionInfo(
        session_id=session_id,
        kind=fields.get("kind", "live"),
        model=fields.get("model", ""),
        owner=fields.get("owner", ""),
        budget=as_json(fields.get("budget"), {}),
        state=fields.get("state", "opening"),
        source=fields.get("source") or None,
        created=as_float(fields.get("created")),
        frames_received=as_int(fields.get("frames_received")),
        frames_processed=as_int(fields.get("frames_processed")),
        frames_dropped=as_int(fields.get("frames_dropped")),
        last_event=as_json(fields.get("last_event"), None),
        source_health=as_json(fields.get("source_health"), None),
        epoch=as_int(fields.get("epoch")),
        frames_lost=as_int(fields.get("frames_lost")),
        ended_reason=fields.get("ended_reason") or None,
        opened_by=fields.get("opened_by") or None,
        source_url=fields.get("source_url") or None,
        stride=_stride(fields.get("stride")),
        budget_seq=as_int(fields.get("budget_seq")),
    )


def _stride(value: str | None) -> int | None:
    """A stored stride, ``None`` when absent, unreadable or out of ``1..MAX_STRIDE``."""
    try:
        stride = int(value) if value is not None else None
    except ValueError:
        return None
    return stride if stride is not None and 1 <= stride <= MAX_STRIDE else None


def choose_owner(
    workers: list[WorkerInfo], counts: dict[str, int], model: str, default_capacity: int
) -> WorkerInfo:
    """The live worker that runs ``model`` live and has the fewest sessions (ties: lowest id).

    Args:
        workers: Live workers.
        counts: Open sessions per worker id.
        model: The session's model.
        default_capacity: Capacity of a worker that reported none.

    Raises:
        NoWorkerError: None runs the model live, or all that do are full.
    """
    able = [w for w in workers if model in w.live_models]
    if not able:
        raise NoWorkerError(f"no live worker runs model {model!r} for live sessions")
    free = [w for w in able if counts.get(w.worker_id, 0) < (w.capacity or default_capacity)]
    if not free:
        raise NoWorkerError(
            f"every worker running {model!r} is at its session capacity; try again later"
        )
    return min(free, key=lambda w: (counts.get(w.worker_id, 0), w.worker_id))


class SessionDirectory:
    """The gateway's side of sessions (asyncio client).

    Args:
        redis: An asyncio client (raw bytes).
        keys: Key names and TTLs.
        settings: ``session_capacity`` is the capacity of a worker that reported none.
    """

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.workers = WorkerDirectory(redis, keys)
        self._send_frame = redis.register_script(_SEND_FRAME)
        self._send_budget = redis.register_script(_SEND_BUDGET)
        inbox = keys.inbox("\0")
        self._inbox_affixes = inbox.split("\0")

    async def _open_ids(self) -> list[str]:
        return sorted(text(m) for m in await self.redis.smembers(self.keys.sessions))

    async def _owner_counts(self) -> dict[str, int]:
        ids = await self._open_ids()
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hmget(self.keys.session(session_id), ["owner", "state"])
            replies = await pipe.execute()
        return dict(
            Counter(
                text(owner)
                for owner, state in replies
                if owner is not None and text(state) not in FINAL_STATES
            )
        )

    async def create(
        self,
        kind: str,
        model: str,
        budget: dict[str, Any],
        source: str | None = None,
        stride: int | None = None,
        opened_by: str | None = None,
    ) -> SessionInfo:
        """Opens a session on the least loaded live worker that runs ``model`` live.

        The owner learns of it from an ``open`` message in its inbox. A live session starts
        with its lease taken: the caller renews it (:meth:`renew`) while it holds the session.

        Args:
            kind: ``live`` or ``rtsp``.
            model: Model name (checked by the caller against the catalog).
            budget: Compute budget as JSON.
            source: The RTSP URL for the worker to read (checked by the caller against the URL
                policy); shown with its password removed.
            stride: Labels every ``stride`` frames (None: the worker's default). Recorded in
                the same transaction as the ``open`` message, so the owner always sees it.
            opened_by: The caller's identity (:attr:`SessionInfo.opened_by`), recorded with it.

        Raises:
            NoWorkerError: No live worker can take it.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        workers = await self.workers.live()
        session_id = uuid.uuid4().hex
        fields: dict[str, Any] = {
            "kind": kind,
            "model": model,
            "budget": budget,
            "state": "opening",
            "source": redact(source) if source else None,
            "source_url": source,
            "created": now(),
            "frames_received": 0,
            "frames_processed": 0,
            "frames_dropped": 0,
            "epoch": 0,
        }
        if stride is not None:
            fields["stride"] = stride
        if opened_by is not None:
            fields["opened_by"] = opened_by
        # The owner is chosen from the counts and written in one optimistic transaction on the
        # open set: sessions opened at the same moment see each other (read-then-write without
        # it sent 8 simultaneous sessions to one of two idle workers).
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(PLACEMENT_ATTEMPTS):
                try:
                    await pipe.watch(self.keys.sessions)
                    counts = await self._owner_counts()
                    capacity = self.settings.session_capacity
                    owner = choose_owner(workers, counts, model, capacity).worker_id
                    fields["owner"] = owner
                    inbox = self.keys.inbox(owner)
                    pipe.multi()
                    pipe.hset(
                        self.keys.session(session_id),
                        mapping={k: to_field(v) for k, v in fields.items()},
                    )
                    if kind == "live":
                        pipe.set(self.keys.lease(session_id), "1", px=self.keys.session_lease_ms)
                    pipe.sadd(self.keys.sessions, session_id)
                    pipe.xadd(
                        inbox,
                        {"type": "open", "session": session_id},
                        maxlen=INBOX_MAXLEN,
                        approximate=True,
                    )
                    pipe.expire(inbox, INBOX_TTL_S)
                    await pipe.execute()
                    break
                except redis.WatchError:
                    continue  # another session opened or ended meanwhile: count again
            else:
                raise NoWorkerError("sessions are opening too fast to place this one; try again")
        return session_info(session_id, {k: to_field(v) for k, v in fields.items()})

    async def renew(self, session_id: str) -> bool:
        """Renews a live session's lease for another ``session_lease_s``; ``False`` when it has
        lapsed already (the session is ending, or has ended)."""
        lease = self.keys.lease(session_id)
        return bool(await self.redis.pexpire(lease, self.keys.session_lease_ms))

    async def get(self, session_id: str) -> SessionInfo | None:
        """The session, ``None`` when unknown or expired."""
        raw = await self.redis.hgetall(self.keys.session(session_id))
        return session_info(session_id, text_hash(raw)) if raw else None

    async def count(self) -> int:
        """Sessions in the open set (live and RTSP; ended ones leave it as they finish)."""
        return int(await self.redis.scard(self.keys.sessions))

    async def ended(self, session_id: str) -> bool:
        """Whether the session has ended: closed, failed, or gone (unknown or expired)."""
        state = await self.redis.hget(self.keys.session(session_id), "state")
        return state is None or text(state) in FINAL_STATES

    async def list(self) -> list[SessionInfo]:
        """The open sessions (live and RTSP), oldest first."""
        ids = await self._open_ids()
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self.keys.session(session_id))
            replies = await pipe.execute()
        infos = [
            session_info(session_id, text_hash(raw))
            for session_id, raw in zip(ids, replies, strict=True)
            if raw
        ]
        return sorted((i for i in infos if i.open), key=lambda i: i.created)

    async def _owner_of_open(self, session_id: str) -> str:
        owner, state = await self.redis.hmget(self.keys.session(session_id), ["owner", "state"])
        if owner is None:
            raise SessionNotFoundError(f"no session {session_id!r} (unknown or expired)")
        if text(state) in FINAL_STATES:
            raise SessionClosedError(f"session {session_id} is {text(state)}")
        return text(owner)

    async def _to_owner(self, owner: str, message: dict[Any, Any]) -> None:
        inbox = self.keys.inbox(owner)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(inbox, message, maxlen=INBOX_MAXLEN, approximate=True)
            pipe.expire(inbox, INBOX_TTL_S)
            await pipe.execute()

    async def send_frame(self, session_id: str, data: bytes, received_s: float, index: int) -> None:
        """Routes a frame to the session's current owner and counts it in ``frames_received``,
        in one atomic round trip.

        Raises:
            SessionNotFoundError: No such session.
            SessionClosedError: The session is closed or failed.
        """
        prefix, suffix = self._inbox_affixes
        status, value = await self._send_frame(
            keys=[self.keys.session(session_id)],
            args=[
                prefix,
                suffix,
                INBOX_MAXLEN,
                INBOX_TTL_S,
                session_id,
                data,
                index,
                repr(received_s),
            ],
        )
        _raise_for(session_id, text(status), text(value))

    async def set_budget(self, session_id: str, budget: dict[str, Any]) -> None:
        """Records a new budget, numbered (``budget_seq``), and tells the owner.

        Raises:
            SessionNotFoundError: No such session.
            SessionClosedError: The session is closed or failed.
        """
        prefix, suffix = self._inbox_affixes
        status, value = await self._send_budget(
            keys=[self.keys.session(session_id)],
            args=[prefix, suffix, INBOX_MAXLEN, INBOX_TTL_S, session_id, dumps(budget)],
        )
        _raise_for(session_id, text(status), text(value))

    async def close(self, session_id: str) -> bool:
        """Closes the session and tells its owner; ``False`` if it was closed already.

        The hash and events stay ``session_ttl_s``, so a client can still read the last events.

        Raises:
            SessionNotFoundError: No such session.
        """
        try:
            owner = await self._owner_of_open(session_id)
        except SessionClosedError:
            return False
        await _finalize(self.redis, self.keys, session_id, "closed", "closed")
        await self._to_owner(owner, {"type": "close", "session": session_id})
        return True


def _raise_for(session_id: str, status: str, value: str) -> None:
    """Raises what a routing script's ``missing`` or ``final`` answer means."""
    if status == "missing":
        raise SessionNotFoundError(f"no session {session_id!r} (unknown or expired)")
    if status == "final":
        raise SessionClosedError(f"session {session_id} is {value}")


def end_session(
    pipe: Any, keys: Keys, session_id: str, state: str, reason: str | None = None
) -> None:
    """Queues on ``pipe`` the commands that end a session: final state (and why), out of the
    open set, lease gone, hash and events expiring after ``session_ttl_s``."""
    fields = {"state": state, "ended": now(), "ended_reason": reason or state}
    pipe.hset(keys.session(session_id), mapping=fields)
    pipe.srem(keys.sessions, session_id)
    pipe.delete(keys.lease(session_id))
    pipe.expire(keys.session(session_id), keys.session_ttl_s)
    pipe.expire(keys.events(session_id), keys.session_ttl_s)


async def _finalize(
    r: redis.asyncio.Redis, keys: Keys, session_id: str, state: str, reason: str
) -> None:
    async with r.pipeline(transaction=True) as pipe:
        end_session(pipe, keys, session_id, state, reason)
        await pipe.execute()
