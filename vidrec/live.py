"""Live sessions over ``WS /v1/streams/live``: frames out, typed events in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from service.budget import check_budget
from service.wire import ErrorEvent, Event, LabelsEvent, SessionEvent, parse_event
from vidrec.errors import TransportError, error_from_event, error_from_response
from vidrec.frames import Frame, frame_bytes

BudgetLike = float | str | dict[str, Any]
"""A budget: a fraction (``0.25``), ``"all"``, or a budget object (``{"threshold": 2.0}``)."""

# After the last frame of send_frames, wait at most this long without an event for the labels of
# the last full stride before closing.
DEFAULT_LINGER_S = 3.0
CLOSE_WAIT_S = 5.0
FINAL_EVENTS = ("closed", "end")


def handshake_error(exc: InvalidHandshake, url: str) -> Exception:
    """An HTTP refusal of the WebSocket handshake as an ApiError, anything else as a
    TransportError."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = bytes(response.body or b"")
        headers = dict(response.headers.raw_items())
        return error_from_response(
            httpx.Response(response.status_code, headers=headers, content=body)
        )
    return TransportError(f"cannot open {url}: {exc}")


@dataclass
class StreamStats:
    """What a live stream did so far.

    Attributes:
        sent: Frames sent.
        labels: ``labels`` events received.
        errors: ``error`` events received.
        gmacs: GMACs the labels events report spent; ``dense_gmacs`` what dense would have.
        last_frame_index: ``frame_index`` of the latest labels event (-1: none yet).
    """

    sent: int = 0
    labels: int = 0
    errors: int = 0
    gmacs: float = 0.0
    dense_gmacs: float = 0.0
    last_frame_index: int = -1
    events: list[str] = field(default_factory=list, repr=False)

    def count(self, event: Event) -> None:
        if isinstance(event, LabelsEvent):
            self.labels += 1
            self.gmacs += event.compute.gmacs
            self.dense_gmacs += event.compute.dense_gmacs
            self.last_frame_index = max(self.last_frame_index, event.frame_index)
        elif isinstance(event, ErrorEvent):
            self.errors += 1


class AsyncLiveStream:
    """A live session over ``WS /v1/streams/live``: send frames, iterate typed events.

    Use as ``async with client.live(...) as stream``. ``session`` is the opening event. Iterating
    yields every later event until the session ends (``closed`` or ``end``) or the connection
    closes. ``send_frames`` sends frames in the background and, by default, closes the session
    once the labels of its last frames came.
    """

    def __init__(self, url: str, headers: dict[str, str], open_timeout_s: float) -> None:
        self._url = url
        self._headers = headers
        self._open_timeout_s = open_timeout_s
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._event_seen = asyncio.Event()
        self._closing = False
        self.session: SessionEvent | None = None
        self.stats = StreamStats()

    @property
    def session_id(self) -> str:
        """The session's id."""
        assert self.session is not None and self.session.session_id is not None
        return self.session.session_id

    async def __aenter__(self) -> AsyncLiveStream:
        try:
            self._ws = await connect(
                self._url,
                additional_headers=self._headers,
                max_size=None,
                open_timeout=self._open_timeout_s,
            )
            first = parse_event(json.loads(await self._ws.recv()))
        except InvalidHandshake as exc:
            raise handshake_error(exc, self._url) from exc
        except (OSError, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            await self._abort()
            raise TransportError(f"cannot open {self._url}: {exc}") from exc
        if not isinstance(first, SessionEvent):
            await self._abort()
            if isinstance(first, ErrorEvent):
                raise error_from_event(first.model_dump(by_alias=True))
            raise TransportError(f"the server opened the stream with {first.type!r}")
        self.session = first
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._reader is not None and not self._reader.done():
            await self.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), CLOSE_WAIT_S)
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._abort()

    async def _abort(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                event = parse_event(json.loads(message))
                self.stats.count(event)
                self._event_seen.set()
                await self._queue.put(event)
                if event.type in FINAL_EVENTS:
                    return
        except ConnectionClosed:
            pass
        finally:
            self._event_seen.set()
            await self._queue.put(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # later calls end too
            raise StopAsyncIteration
        return event

    @property
    def ended(self) -> bool:
        """Whether the server ended the session or the connection closed."""
        return self._reader is not None and self._reader.done()

    async def send(self, frame: Frame, *, header: dict[str, Any] | None = None) -> None:
        """Sends one frame: image bytes, an image file's path, an ``(H, W, 3)`` uint8 RGB array
        or a PIL image (encoded as JPEG). ``header`` (``{"timestamp": s, "index": n}``) goes
        before the image as one JSON line.

        Raises:
            TransportError: The connection is closed.
        """
        data = frame if isinstance(frame, bytes) else await asyncio.to_thread(frame_bytes, frame)
        if header:
            data = json.dumps(header).encode() + b"\n" + data
        assert self._ws is not None
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise TransportError(f"the stream is closed: {exc}") from exc
        self.stats.sent += 1

    async def set_budget(self, budget: BudgetLike) -> None:
        """Changes the budget from the next frame (answered by a ``budget`` event)."""
        assert self._ws is not None
        await self._ws.send(json.dumps({"budget": check_budget(budget)}))

    async def close(self) -> None:
        """Asks the server to end the session; iteration ends after its ``closed`` event."""
        if self._closing or self._ws is None:
            return
        self._closing = True
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(json.dumps({"type": "close"}))

    async def finish(self, linger_s: float = DEFAULT_LINGER_S) -> None:
        """Waits for the labels of the frames sent (the event of the last full stride), or until
        no event came for ``linger_s`` seconds; then closes the session."""
        stride = max(1, (self.session.stride if self.session else None) or 1)
        expected = (self.stats.sent // stride) * stride
        while not self.ended and self.stats.last_frame_index < expected:
            self._event_seen.clear()
            try:
                await asyncio.wait_for(self._event_seen.wait(), linger_s)
            except TimeoutError:
                break
        await self.close()

    def send_frames(
        self,
        frames: Iterable[Frame] | AsyncIterable[Frame],
        *,
        fps: float | None = None,
        close: bool = True,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> asyncio.Task[None]:
        """Sends ``frames`` in the background (paced at ``fps``; ``None`` or 0: as fast as they
        come) and, with ``close``, ends the session once their labels came (:meth:`finish`).
        Reading a plain iterable (a video decoder) runs in a thread, so events keep flowing.

        Returns:
            The sending task (its exception, if any, is raised by awaiting it).
        """
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be 0 or positive, got {fps}")
        self._sender = asyncio.create_task(self._send_all(frames, fps or 0.0, close, linger_s))
        return self._sender

    async def _send_all(
        self,
        frames: Iterable[Frame] | AsyncIterable[Frame],
        fps: float,
        close: bool,
        linger_s: float,
    ) -> None:
        start = time.monotonic()
        index = 0
        async for frame in _frames(frames):
            if self.ended:  # the server ended the session
                return
            if fps > 0:
                delay = start + index / fps - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send(frame)
            index += 1
        if close:
            await self.finish(linger_s)


async def _frames(frames: Iterable[Frame] | AsyncIterable[Frame]) -> AsyncIterator[Frame]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
        return
    it = iter(frames)
    done = object()
    while (frame := await asyncio.to_thread(next, it, done)) is not done:
        yield frame
