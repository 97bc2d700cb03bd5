"""Stream sessions: live WebSocket frames, RTSP sources, and their event streams.

A session runs on one worker (its owner). The gateway only routes: it checks a frame's size and
header (the worker decodes it), numbers it, stamps its receive time and puts it on the owner's
inbox; it relays the session's events from Redis. A client that loses its connection reconnects
to ``/v1/streams/{id}/events?after=<last event id>`` on any gateway and reads on.

A session belongs to the caller that opened it (its principal's ``who``, recorded as
``opened_by``). With auth on, a key sees, follows and stops only its own sessions, unless it has
the ``admin`` scope; another's session answers exactly as an unknown one (404
``session_not_found``), so its id is not confirmed. With auth off every caller sees every session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Coroutine
from typing import Annotated, Any

import anyio
import redis
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from service import limits, wire
from service.budget import check_budget, default_budget, parse_budget_text
from service.gateway.auth import caller, may_see
from service.gateway.catalog import LiveCatalog, Role
from service.gateway.errors import ApiError, clip, close_unavailable, error_event
from service.gateway.request_id import request_id_of
from service.gateway.responses import answer, errors
from service.gateway.state import Gateway, get_gateway
from service.ingest import IngestError, check_source_url, split_message
from service.queue import QueueError, SessionInfo
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_STRIDE = limits.MAX_STRIDE
MAX_EVENT_ID_CHARS = 64
CLOSE_TIMEOUT_S = 5.0
EVENT_BLOCK_MS = 1000
# Text messages are small JSON control messages; anything larger is refused.
MAX_TEXT_BYTES = 4096
_EVENT_ID = re.compile(r"^(\d+)(-\d+)?$")

# WebSocket close codes (RFC 6455 and the IANA registry).
WS_NORMAL = 1000
WS_POLICY = 1008
WS_TRY_AGAIN = 1013


# The query parameters each WebSocket takes; any other is refused by name (a typo such as
# ``bugdet`` would otherwise open a session with the default budget).
LIVE_QUERY = ("model", "budget", "stride")
EVENTS_QUERY = ("after",)
# The fields of a live socket's text messages.
CONTROL_FIELDS = ("type", "budget")


class StreamRequest(BaseModel):
    """An RTSP source to read; any other field is refused."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description="rtsp:// or rtsps:// URL", min_length=1, max_length=limits.MAX_SOURCE_CHARS
    )
    model: str | None = Field(
        default=None,
        max_length=limits.MAX_NAME_CHARS,
        description="Model; default: the live default",
    )
    budget: float | str | dict[str, Any] | None = Field(
        default=None,
        description="Fraction of tokens recomputed per frame, 'all', or {'fraction'|'tokens'|"
        "'threshold'|'keep_all': ...}; default: the deployment's",
    )
    stride: int | None = Field(default=None, ge=1, le=MAX_STRIDE, description="Labels every N")


def session_body(info: SessionInfo, gw: Gateway) -> dict[str, Any]:
    """A session as the API shows it (never the source URL with its credentials), built
    through ``service.wire.SessionView``."""
    return wire.build(wire.SessionView, _session_fields(info, gw)).wire()


def _session_fields(info: SessionInfo, gw: Gateway) -> dict[str, Any]:
    return {
        "session_id": info.session_id,
        "kind": info.kind,
        "model": info.model,
        "owner": info.owner,
        "state": info.state,
        "budget": info.budget,
        "stride": info.stride or gw.settings.stride,
        "source": info.source,
        "source_health": info.source_health,
        "created": info.created,
        "epoch": info.epoch,
        "latest": info.last_event,
        "counters": {
            "frames_received": info.frames_received,
            "frames_processed": info.frames_processed,
            "frames_dropped": info.frames_dropped,
            "frames_lost": info.frames_lost,
        },
        "ended_reason": info.ended_reason,
        "events_url": f"/v1/streams/{info.session_id}/events",
    }


async def _open_session(
    gw: Gateway,
    kind: str,
    model: str | None,
    budget: dict[str, Any] | None,
    stride: int,
    source: str | None = None,
) -> tuple[SessionInfo, dict[str, Any]]:
    """Resolves the model, creates the session, records its stride; returns it and its model row.

    ``budget`` None (the client named none) takes the default: ``VIDREC_DEFAULT_BUDGET``, else
    what the model's bundle recommends as its workers advertise it, else a quarter of the tokens.

    Raises:
        ApiError: No worker, unknown model.
        QueueError: No worker can take a session.
    """
    role: Role = "live"
    catalog = LiveCatalog.of(await gw.workers.live())
    name = catalog.resolve(model or None, role, gw.settings.live_model)
    if budget is None:
        budget = default_budget(
            gw.settings.default_budget, catalog.row(name).get("recommended_budget")
        )
    # The stride is recorded with the session, before its owner hears of it, for the worker
    # to honour and for GET /v1/streams/{id}.
    info = await gw.limits.hold(  # within the caller's quota of sessions of this kind
        kind,
        lambda: gw.sessions.create(
            kind, name, budget, source=source, stride=stride, opened_by=caller()
        ),
        lambda created: created.session_id,
    )
    return info, catalog.row(name)


def _session_event(info: SessionInfo, row: dict[str, Any], stride: int) -> dict[str, Any]:
    fields = {
        "session_id": info.session_id,
        "kind": info.kind,
        "model": info.model,
        "stride": stride,
        "window": row.get("frames"),
        "budget": info.budget,
        "owner": info.owner,
        "events_url": f"/v1/streams/{info.session_id}/events",
    }
    return wire.build(wire.SessionEvent, fields).wire()


def _unknown_query(ws: WebSocket, accepted: tuple[str, ...]) -> str | None:
    """What to say of query parameters the route does not take; ``None`` when there are none."""
    unknown = sorted({name for name in ws.query_params if name not in accepted})
    if not unknown:
        return None
    names = ", ".join(repr(n) for n in unknown)
    return f"unknown query parameter {names}; this route takes {', '.join(accepted)}"


class _Socket:
    """A WebSocket with one lock around sends, since two tasks (frames in, events out) send."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._lock = asyncio.Lock()
        self.request_id = request_id_of(ws.scope)

    async def send(self, event: dict[str, Any]) -> None:
        if self.request_id and "request_id" not in event:  # the connection's id on every event
            event = {**event, "request_id": self.request_id}
        async with self._lock:
            await self.ws.send_text(json.dumps(event, separators=(",", ":")))

    async def close(self, code: int = WS_NORMAL, reason: str = "") -> None:
        async with self._lock:
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await self.ws.close(code, reason)


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int = WS_POLICY) -> None:
    """Accepts, says why in an error event, closes: a browser cannot read a refused handshake."""
    await ws.accept()
    sock = _Socket(ws)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await sock.send(error_event(code, message))
    await sock.close(close_code, code)


async def _relay_events(
    gw: Gateway,
    sock: _Socket,
    session_id: str,
    after: str,
    stop_when_final: bool,
    cursor: list[str] | None = None,
) -> None:
    """Sends the session's events from ``after`` on; returns once the session has ended and its
    remaining events are sent (when ``stop_when_final``). ``cursor[0]``, when given, follows
    the last event sent, for a relay that must go on from there.

    The events come through the gateway's fan-out (one shared blocking read), so the relay holds
    no Redis connection while it waits; it checks the session's state only after a wait of
    ``EVENT_BLOCK_MS`` with no event."""

    async def send(events: list[tuple[str, dict[str, Any]]]) -> None:
        for event_id, event in events:
            await sock.send(event)
            if cursor is not None:
                cursor[0] = event_id

    async with gw.fanout.subscribe(session_id, after) as sub:
        while True:
            # Jittered: relays woken together by one shared read would otherwise check their
            # sessions' states together, and the pool opens a connection per call at once.
            events = await sub.get(EVENT_BLOCK_MS / 1000 * random.uniform(0.75, 1.25))
            await send(events)
            if not events and stop_when_final and await gw.sessions.ended(session_id):
                # Read after the state: events written before the session ended are there,
                # even those the shared read had not handed over yet.
                await send(await sub.rest())
                return


def router(settings: Settings) -> APIRouter:
    """The stream routes."""
    api = APIRouter(tags=["streams"])
    frame_limits = settings.frame_limits()
    url_policy = settings.url_policy()

    @api.websocket("/v1/streams/live")
    async def live(
        ws: WebSocket,
        gw: Annotated[Gateway, Depends(get_gateway)],
        model: str | None = None,
        budget: str | None = None,
        stride: str | None = None,
    ) -> None:
        """Binary frames in (optional JSON header line, then JPEG/PNG/WebP), JSON events out.

        Query: ``model``, ``budget`` (a fraction, ``all``, or a JSON budget object), ``stride``.
        Text messages: ``{"budget": ...}`` changes the budget, ``{"type": "close"}`` ends.
        """
        unknown = _unknown_query(ws, LIVE_QUERY)
        if unknown:
            await _refuse(ws, "invalid_request", unknown)
            return
        try:
            spec = parse_budget_text(budget) if budget else None
            every = _parse_stride(stride, gw.settings.stride)
        except ValueError as exc:
            await _refuse(ws, "invalid_request", str(exc))
            return
        try:
            info, row = await _open_session(gw, "live", model, spec, every)
        except (ApiError, QueueError) as exc:
            api = exc if isinstance(exc, ApiError) else ApiError.from_queue(exc)
            close = WS_TRY_AGAIN if api.status == 503 else WS_POLICY
            await _refuse(ws, api.code, api.message, close)
            return
        session_id = info.session_id
        await ws.accept()
        sock = _Socket(ws)
        try:
            await sock.send(_session_event(info, row, every))
            cursor = ["0-0"]
            relay = _relay_events(gw, sock, session_id, "0-0", True, cursor)
            receive = _receive_live(gw, ws, sock, session_id, frame_limits)
            lease = _hold_lease(gw, session_id)
            first = await _first_of(relay, receive, lease)
            if first == 2:  # the lease lapsed: the session is ending; send what it says why
                with anyio.move_on_after(gw.settings.session_lease_s):
                    await _relay_events(gw, sock, session_id, cursor[0], stop_when_final=True)
            if first != 1:
                await _send_end(gw, sock, session_id)
        except WebSocketDisconnect:
            pass
        except redis.RedisError as exc:  # an error event and 1013, not a silent 1000
            log.warning("live session %s: redis error: %s", session_id, exc)
            await close_unavailable(ws)
        finally:
            # Shielded: the server cancels the handler when the client goes, and the session
            # must still be closed so its worker frees the slot.
            with (
                anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True),
                contextlib.suppress(QueueError, redis.RedisError, OSError),
            ):
                await gw.sessions.close(session_id)
            await sock.close()

    @api.post(
        "/v1/streams",
        status_code=201,
        response_model=wire.SessionView,
        responses=errors(
            400,
            403,
            404,
            413,
            422,
            s400="Malformed or non-RTSP URL",
            s403="The key lacks the scope, or the source host is not allowed",
            s503="No worker can take a session, or the queue (Redis) is not reachable",
        ),
        summary="Read an RTSP source",
    )
    async def create_stream(
        body: StreamRequest, gw: Annotated[Gateway, Depends(get_gateway)]
    ) -> JSONResponse:
        """Creates a session whose owner worker reads the RTSP source."""
        checked = await run_in_threadpool(check_source_url, body.source, url_policy)
        try:
            spec = check_budget(body.budget) if body.budget is not None else None
        except ValueError as exc:
            raise ApiError(422, "invalid_request", f"budget: {exc}") from exc
        every = body.stride or gw.settings.stride
        info, _row = await _open_session(gw, "rtsp", body.model, spec, every, source=checked.url)
        return JSONResponse(session_body(info, gw), status_code=201)

    @api.get(
        "/v1/streams",
        response_model=wire.SessionList,
        responses=errors(),
        summary="The caller's open sessions, live and RTSP, oldest first",
    )
    async def list_streams(gw: Annotated[Gateway, Depends(get_gateway)]) -> JSONResponse:
        """The open sessions the caller may see, as ``GET /v1/streams/{id}`` shows each: with
        auth on, those its key opened (an admin key: all); with auth off, all."""
        infos = [info for info in await gw.sessions.list() if may_see(info.opened_by)]
        sessions = [_session_fields(info, gw) for info in infos]
        return answer(wire.build(wire.SessionList, {"sessions": sessions, "count": len(sessions)}))

    @api.get(
        "/v1/streams/{session_id}",
        response_model=wire.SessionView,
        responses=errors(404, 422, s404="Unknown or expired session"),
        summary="A session's state, source health, latest labels and counters",
    )
    async def get_stream(
        session_id: str, gw: Annotated[Gateway, Depends(get_gateway)]
    ) -> JSONResponse:
        """The session as recorded in Redis."""
        info = await _existing(gw, session_id)
        return JSONResponse(session_body(info, gw))

    @api.delete(
        "/v1/streams/{session_id}",
        response_model=wire.SessionView,
        responses=errors(404, 422, s404="Unknown or expired session"),
        summary="Stop a session",
    )
    async def delete_stream(
        session_id: str, gw: Annotated[Gateway, Depends(get_gateway)]
    ) -> JSONResponse:
        """Closes the session; its events stay readable for a while."""
        await _existing(gw, session_id)
        closed = await gw.sessions.close(session_id)
        info = await _existing(gw, session_id)
        fields = _session_fields(info, gw)
        return answer(wire.build(wire.SessionView, {**fields, "closed_now": closed}))

    @api.websocket("/v1/streams/{session_id}/events")
    async def stream_events(
        ws: WebSocket,
        session_id: str,
        gw: Annotated[Gateway, Depends(get_gateway)],
        after: str | None = None,
    ) -> None:
        """The session's events, from after the event id ``after`` (default: the oldest kept)."""
        unknown = _unknown_query(ws, EVENTS_QUERY)
        if unknown:
            await _refuse(ws, "invalid_request", unknown)
            return
        cursor = after or "0-0"
        if len(cursor) > MAX_EVENT_ID_CHARS or not _EVENT_ID.match(cursor):
            message = f"after must be an event id like 1712-0, not {cursor!r}"
            await _refuse(ws, "invalid_request", message)
            return
        info = await gw.sessions.get(session_id)
        if info is None or not may_see(info.opened_by):  # another key's session: as if unknown
            message = f"no session {session_id!r} (unknown or expired)"
            await _refuse(ws, "session_not_found", message)
            return
        await ws.accept()
        sock = _Socket(ws)
        try:
            if after is None:
                fields = _session_fields(info, gw)
                await sock.send(wire.build(wire.SessionEvent, fields).wire())
            relay = _relay_events(gw, sock, session_id, cursor, stop_when_final=True)
            if await _first_of(relay, _until_disconnect(ws)) == 0:
                await _send_end(gw, sock, session_id)
        except WebSocketDisconnect:
            pass
        except redis.RedisError as exc:
            log.warning("events of session %s: redis error: %s", session_id, exc)
            await close_unavailable(ws)
        finally:
            await sock.close()

    return api


async def _first_of(*coros: Coroutine[Any, Any, None]) -> int:
    """Runs the coroutines until one returns; cancels the others; returns the index of the one
    that finished (its exception, if any, is raised)."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        # Wait for the cancelled ones; whatever they raise while stopping does not matter.
        await asyncio.gather(*pending, return_exceptions=True)
    first = next(i for i, t in enumerate(tasks) if t.done() and not t.cancelled())
    for task in tasks:  # retrieve every exception, so none is reported as never retrieved
        if task.done() and not task.cancelled():
            task.exception()
    exc = tasks[first].exception()
    if exc is not None:
        raise exc
    return first


async def _send_end(gw: Gateway, sock: _Socket, session_id: str) -> None:
    """Tells the client the session ended (closed elsewhere, or failed) before closing."""
    info = await gw.sessions.get(session_id)
    state = info.state if info else "closed"
    end: dict[str, Any] = {"session_id": session_id, "state": state}
    if info is not None and info.ended_reason:
        end["reason"] = info.ended_reason
    await sock.send(wire.build(wire.EndEvent, end).wire())


async def _hold_lease(gw: Gateway, session_id: str) -> None:
    """Renews the session's lease while this connection holds it; returns once it has lapsed
    (the session was ended: idle, or its lease found lapsed by its worker)."""
    every_s = gw.settings.session_lease_s / 3
    while await gw.sessions.renew(session_id):
        # Jittered: connections opened together (clients back after a restart) spread out.
        await asyncio.sleep(every_s * random.uniform(0.8, 1.0))


async def _until_disconnect(ws: WebSocket) -> None:
    """Reads (and ignores) client messages until it disconnects."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _existing(gw: Gateway, session_id: str) -> SessionInfo:
    """The session, if the caller may see it.

    Raises:
        ApiError: 404, the same for an unknown session and for another key's.
    """
    info = await gw.sessions.get(session_id)
    if info is None or not may_see(info.opened_by):
        raise ApiError(404, "session_not_found", f"no session {session_id!r} (unknown or expired)")
    return info


def _parse_stride(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"stride must be an integer, not {text!r}") from None
    if not 1 <= value <= MAX_STRIDE:
        raise ValueError(f"stride must be between 1 and {MAX_STRIDE}")
    return value


async def _receive_live(
    gw: Gateway, ws: WebSocket, sock: _Socket, session_id: str, limits: Any
) -> None:
    """Routes the client's messages until it disconnects or asks to close."""
    index = 0
    metrics = gw.metrics
    while True:
        message = await ws.receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is not None:
            received = time.time()
            metrics.frames_received.labels(kind="live").inc()
            try:
                split_message(data, limits)
            except IngestError as exc:
                metrics.frames_dropped.labels(reason=exc.code).inc()
                await sock.send(
                    error_event(exc.code, exc.message, session_id=session_id, input_index=index)
                )
                index += 1
                continue
            try:
                await gw.sessions.send_frame(session_id, data, received, index)
            except QueueError as exc:
                await sock.send(error_event(exc.code, exc.message))
                return
            index += 1
            continue
        if await _control(gw, sock, session_id, message.get("text") or ""):
            return


async def _control(gw: Gateway, sock: _Socket, session_id: str, text: str) -> bool:
    """Handles one text message; ``True`` when the client asked to close."""
    if len(text) > MAX_TEXT_BYTES:
        await sock.send(
            error_event("invalid_message", f"text messages are at most {MAX_TEXT_BYTES} bytes")
        )
        return False
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        await sock.send(error_event("invalid_message", f"the message is not JSON: {exc}"))
        return False
    if not isinstance(msg, dict):
        await sock.send(error_event("invalid_message", "a text message must be a JSON object"))
        return False
    unknown = sorted(str(k) for k in msg if k not in CONTROL_FIELDS)
    if unknown:  # {"budget": 0.5, "stirde": 2} must not pass for a stride change
        names = ", ".join(repr(clip(n, 64)) for n in unknown[:10])
        await sock.send(
            error_event(
                "invalid_message",
                f'unknown field {names} in a message; expected {{"budget": ...}} or '
                '{"type": "close"}',
            )
        )
        return False
    if msg.get("type") == "close":
        await gw.sessions.close(session_id)
        await sock.send(wire.ClosedEvent(session_id=session_id).wire())
        return True
    if "budget" in msg:
        try:
            budget = check_budget(msg["budget"])
        except ValueError as exc:
            await sock.send(error_event("invalid_budget", str(exc)))
            return False
        try:
            await gw.sessions.set_budget(session_id, budget)
        except QueueError as exc:
            await sock.send(error_event(exc.code, exc.message))
            return True
        await sock.send(wire.BudgetEvent(session_id=session_id, budget=budget).wire())
        return False
    await sock.send(
        error_event(
            "invalid_message",
            'expected {"budget": ...} or {"type": "close"}',
        )
    )
    return False
