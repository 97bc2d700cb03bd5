"""The blocking client: the asyncio client (vidrec/aio.py) run on a private event loop thread,
so the sync and async APIs cannot drift apart."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from service.wire import (
    ClipAnswer,
    Event,
    Health,
    JobAccepted,
    JobView,
    ModelList,
    Readiness,
    SessionEvent,
    SessionView,
)
from vidrec._config import RetryPolicy
from vidrec.aio import DEFAULT_TIMEOUT_S, AsyncClient, Video
from vidrec.frames import Frame
from vidrec.live import DEFAULT_LINGER_S, AsyncLiveStream, BudgetLike, StreamStats

T = TypeVar("T")


class _Loop:
    """An event loop on a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="vidrec", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller's thread stops the work on the loop too
            raise

    def iterate(self, aiter: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> T:
            return await anext(aiter)

        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(aiter, "aclose", None)
            # After Ctrl-C the generator may still be unwinding its cancellation (then aclose
            # raises RuntimeError): that closes its connection anyway.
            if aclose is not None and self.loop.is_running():
                with contextlib.suppress(Exception):
                    self.run(aclose())

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


class LiveStream:
    """A live session: ``with client.live() as stream``; see :class:`vidrec.AsyncLiveStream`.

    ``send`` sends one frame; ``send_frames`` sends many in the background (a thread reads
    them) and closes the session once their labels came; iterating yields typed events until
    the session ends.
    """

    def __init__(self, loop: _Loop, stream: AsyncLiveStream) -> None:
        self._loop = loop
        self._stream = stream

    def __enter__(self) -> LiveStream:
        self._loop.run(self._stream.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.run(self._stream.__aexit__(exc_type, exc, tb))

    @property
    def session(self) -> SessionEvent:
        """The opening ``session`` event (model, stride, window, budget, owner)."""
        assert self._stream.session is not None
        return self._stream.session

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._stream.session_id

    @property
    def stats(self) -> StreamStats:
        """Frames sent, events and GMACs so far."""
        return self._stream.stats

    def __iter__(self) -> Iterator[Event]:
        return self._loop.iterate(self._stream)

    def send(self, frame: Frame, *, header: dict[str, Any] | None = None) -> None:
        """Sends one frame (image bytes, an image file, an RGB uint8 array or a PIL image)."""
        self._loop.run(self._stream.send(frame, header=header))

    def send_frames(
        self,
        frames: Iterable[Frame],
        *,
        fps: float | None = None,
        close: bool = True,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> None:
        """Sends ``frames`` in the background at ``fps`` and, with ``close``, ends the session
        once their labels came; iterate the stream meanwhile."""

        async def start() -> None:
            self._stream.send_frames(frames, fps=fps, close=close, linger_s=linger_s)

        self._loop.run(start())

    def set_budget(self, budget: BudgetLike) -> None:
        """Changes the budget from the next frame."""
        self._loop.run(self._stream.set_budget(budget))

    def finish(self, linger_s: float = DEFAULT_LINGER_S) -> None:
        """Waits for the labels of the frames sent, then closes the session."""
        self._loop.run(self._stream.finish(linger_s))

    def close(self) -> None:
        """Asks the server to end the session."""
        self._loop.run(self._stream.close())


class Client:
    """A blocking client of a vidrec server.

    Args:
        url: The server; default ``$VIDREC_URL``, else ``http://127.0.0.1:8000``.
        api_key: Sent as ``Authorization: Bearer``; default ``$VIDREC_API_KEY``.
        timeout: Seconds for one HTTP request (an upload waits for its answer within it).
        retry: How 429/503 answers and unreachable servers are retried.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._loop = _Loop()
        try:
            self.aio = self._loop.run(_make(url, api_key, timeout, retry))
        except BaseException:
            self._loop.close()
            raise
        self.url = self.aio.url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Closes the connections and the client's event loop thread."""
        if not self._loop.loop.is_closed():
            self._loop.run(self.aio.aclose())
            self._loop.close()

    @overload
    def classify(
        self,
        video: Video,
        *,
        model: str | None = ...,
        top_k: int = ...,
        clips: int = ...,
        crops: int = ...,
        wait: Literal[True] = ...,
        filename: str | None = ...,
    ) -> ClipAnswer: ...

    @overload
    def classify(
        self,
        video: Video,
        *,
        model: str | None = ...,
        top_k: int = ...,
        clips: int = ...,
        crops: int = ...,
        wait: Literal[False],
        filename: str | None = ...,
    ) -> JobAccepted: ...

    def classify(
        self,
        video: Video,
        *,
        model: str | None = None,
        top_k: int = 5,
        clips: int = 1,
        crops: int = 1,
        wait: bool = True,
        filename: str | None = None,
    ) -> ClipAnswer | JobAccepted:
        """Uploads a clip and returns its labels, timing and compute (see
        :meth:`vidrec.AsyncClient.classify`)."""
        coro = self.aio.classify(
            video,
            model=model,
            top_k=top_k,
            clips=clips,
            crops=crops,
            wait=wait,  # type: ignore[call-overload]
            filename=filename,
        )
        result: ClipAnswer | JobAccepted = self._loop.run(coro)
        return result

    def submit(self, video: Video, **options: Any) -> JobAccepted:
        """Queues a clip without waiting; see :meth:`wait`."""
        return self._loop.run(self.aio.submit(video, **options))

    def job(self, job_id: str) -> JobView:
        """A job's state, with its result (or error) once answered. With auth on, a job another
        key submitted is not found (404), as an unknown one; an admin key reads every job."""
        return self._loop.run(self.aio.job(job_id))

    def wait(self, job_id: str, *, timeout: float | None = None, poll_s: float = 0.2) -> ClipAnswer:
        """Polls a job until it is answered (raises its error if it failed)."""
        return self._loop.run(self.aio.wait(job_id, timeout=timeout, poll_s=poll_s))

    def models(self) -> ModelList:
        """The models the live workers serve, with the defaults."""
        return self._loop.run(self.aio.models())

    def health(self) -> Health:
        """``/healthz``."""
        return self._loop.run(self.aio.health())

    def ready(self) -> Readiness:
        """``/readyz`` (a 503 is answered, not raised)."""
        return self._loop.run(self.aio.ready())

    def live(
        self,
        *,
        model: str | None = None,
        budget: BudgetLike | None = None,
        stride: int | None = None,
    ) -> LiveStream:
        """A live session: ``with client.live(budget=0.25) as stream``."""
        return LiveStream(self._loop, self.aio.live(model=model, budget=budget, stride=stride))

    def open_rtsp(
        self,
        source: str,
        *,
        model: str | None = None,
        budget: BudgetLike | None = None,
        stride: int | None = None,
    ) -> SessionView:
        """Asks a worker to read an RTSP camera; follow it with :meth:`events`."""
        coro = self.aio.open_rtsp(source, model=model, budget=budget, stride=stride)
        return self._loop.run(coro)

    def sessions(self) -> list[SessionView]:
        """The open sessions this key opened (every one for an admin key, or with auth off),
        live and RTSP, oldest first."""
        return self._loop.run(self.aio.sessions())

    def session(self, session_id: str) -> SessionView:
        """A session's state, source health, latest labels and counters."""
        return self._loop.run(self.aio.session(session_id))

    def close(self, session_id: str) -> SessionView:
        """Stops a session."""
        return self._loop.run(self.aio.close(session_id))

    def events(
        self, session_id: str, *, after: str | None = None, reconnect: bool = True
    ) -> Iterator[Event]:
        """A session's events until it ends, resuming after the last one on a lost connection."""
        return self._loop.iterate(self.aio.events(session_id, after=after, reconnect=reconnect))


async def _make(
    url: str | None, api_key: str | None, timeout: float, retry: RetryPolicy | None
) -> AsyncClient:
    # Made on the loop's thread, so its connections belong to that loop.
    return AsyncClient(url, api_key=api_key, timeout=timeout, retry=retry)
