"""Reading an RTSP source in a background thread, reconnecting when it drops.

The reader checks its URL against the policy before anything else (a refused URL never causes a
connection), connects over TCP by default with open and read timeouts, and decodes at the
source's own pace into a small :class:`LatestBuffer`: when the consumer is slower, the oldest
frames are dropped and counted. Frames are sampled to a target rate on their timestamps. After a
failure it reconnects with exponential backoff and jitter, and after ``max_attempts`` consecutive
failures it gives up. Its :class:`StreamState` is what the API reports.
"""

from __future__ import annotations

import enum
import errno
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import av.container
import av.error
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from service.ingest.buffer import LatestBuffer
from service.ingest.convert import scaled_size, to_rgb
from service.ingest.errors import (
    IngestError,
    InvalidSourceURLError,
    SourceError,
    SourceTimeoutError,
    SourceUnreachableError,
    SourceURLForbiddenError,
)
from service.ingest.sampling import FpsSampler
from service.ingest.settings import RtspSettings, UrlPolicy
from service.ingest.url_policy import (
    CheckedURL,
    check_source_url,
    precheck_source_url,
    redact,
)

log = logging.getLogger(__name__)


class StreamState(enum.Enum):
    """Where a reader is in its life.

    ``idle`` (created) → ``connecting`` → ``streaming`` ⇄ ``reconnecting`` → ... and finally
    ``stopped`` (asked to stop) or ``failed`` (gave up, or the URL became refused).
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """Whether no further transition can happen."""
        return self in (StreamState.STOPPED, StreamState.FAILED)


_TRANSITIONS: dict[StreamState, frozenset[StreamState]] = {
    StreamState.IDLE: frozenset({StreamState.CONNECTING, StreamState.STOPPED}),
    StreamState.CONNECTING: frozenset(
        {StreamState.STREAMING, StreamState.RECONNECTING, StreamState.STOPPED, StreamState.FAILED}
    ),
    StreamState.STREAMING: frozenset(
        {StreamState.RECONNECTING, StreamState.STOPPED, StreamState.FAILED}
    ),
    StreamState.RECONNECTING: frozenset(
        {StreamState.CONNECTING, StreamState.STOPPED, StreamState.FAILED}
    ),
    StreamState.STOPPED: frozenset(),
    StreamState.FAILED: frozenset(),
}


class InvalidTransitionError(RuntimeError):
    """A state change the state machine does not allow (a bug, never bad input)."""


@dataclass(frozen=True)
class LiveFrame:
    """One frame handed on by a reader.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        index: Position among the frames handed on since the reader started (gaps are drops).
        source_time_s: The frame's timestamp on the source's clock, when it has one.
        received_at: ``time.monotonic()`` when the frame was decoded.
        connection: Which connection (1 for the first, 2 after one reconnect...) produced it.
    """

    image: npt.NDArray[np.uint8]
    index: int
    source_time_s: float | None
    received_at: float
    connection: int


@dataclass(frozen=True)
class ReaderStatus:
    """A snapshot of a reader for the API and metrics.

    Attributes:
        state: The current state.
        url: The source URL, password redacted.
        frames_received: Frames decoded from the source.
        frames_sampled: Frames kept by the target-rate sampler and put in the buffer.
        frames_dropped: Sampled frames dropped because the consumer did not take them in time.
        connections: Connection attempts made.
        reconnects: Times the reader went to ``reconnecting``.
        last_error: The error of the last failed connection, if any.
        failures: Consecutive failed connection attempts (0 once a frame arrives).
        next_attempt_at: When the next connection attempt is due (unix seconds), while
            ``reconnecting``; ``None`` otherwise.
    """

    state: StreamState
    url: str
    frames_received: int
    frames_sampled: int
    frames_dropped: int
    connections: int
    reconnects: int
    last_error: IngestError | None
    failures: int = 0
    next_attempt_at: float | None = None


def backoff_delay(settings: RtspSettings, failures: int, rng: random.Random) -> float:
    """Seconds to wait before reconnection attempt number ``failures + 1``.

    ``initial * multiplier ** (failures - 1)``, capped at ``backoff_max_s``, then spread by
    ``+/- jitter`` so that many cameras lost together do not come back in lockstep.
    """
    base = settings.backoff_initial_s * settings.backoff_multiplier ** max(failures - 1, 0)
    base = min(base, settings.backoff_max_s)
    return base * (1.0 + rng.uniform(-settings.jitter, settings.jitter))


class RtspReader:
    """Reads one RTSP source in a daemon thread.

    Example::

        reader = RtspReader("rtsp://cam.example/stream", RtspSettings(target_fps=8))
        reader.start()
        frame = reader.read(timeout=1.0)   # LiveFrame or None
        reader.status().state              # StreamState.STREAMING
        reader.stop()
    """

    def __init__(
        self,
        url: str,
        settings: RtspSettings | None = None,
        policy: UrlPolicy | None = None,
        *,
        on_state: Callable[[StreamState], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Checks the URL and prepares the reader; nothing connects, and no name is looked up,
        until :meth:`start`.

        Args:
            url: An rtsp:// or rtsps:// URL.
            settings: Transport, timeouts, backoff, buffer and sampling.
            policy: The URL policy. Checked now as far as it needs no DNS lookup (the form,
                the name lists, an address literal), and wholly, host resolved, by the reader
                thread before every connection, since a name may resolve differently later:
                a name that resolves to a refused address fails the reader (state ``failed``).
            on_state: Called from the reader thread with each new state.
            rng: Source of jitter (seeded in tests).

        Raises:
            InvalidSourceURLError: The URL is malformed or not rtsp/rtsps.
            SourceURLForbiddenError: The policy refuses its host's name or address literal.
        """
        self._url = url
        self._settings = settings or RtspSettings()
        self._policy = policy or UrlPolicy()
        precheck_source_url(url, self._policy)
        self._on_state = on_state
        self._rng = rng or random.Random()
        self._buffer: LatestBuffer[LiveFrame] = LatestBuffer(self._settings.buffer_size)
        self._sampler = FpsSampler(self._settings.target_fps)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._state = StreamState.IDLE
        self._thread: threading.Thread | None = None
        self._received = 0
        self._sampled = 0
        self._connections = 0
        self._reconnects = 0
        self._last_error: IngestError | None = None
        self._failures = 0
        self._next_attempt_at: float | None = None

    # Consumer side.

    @property
    def state(self) -> StreamState:
        """The current state."""
        with self._cond:
            return self._state

    def status(self) -> ReaderStatus:
        """A consistent snapshot of state and counters."""
        with self._cond:
            return ReaderStatus(
                state=self._state,
                url=redact(self._url),
                frames_received=self._received,
                frames_sampled=self._sampled,
                frames_dropped=self._buffer.dropped,
                connections=self._connections,
                reconnects=self._reconnects,
                last_error=self._last_error,
                failures=self._failures,
                next_attempt_at=self._next_attempt_at,
            )

    def read(self, timeout: float | None = None) -> LiveFrame | None:
        """The oldest frame still buffered, waiting up to ``timeout`` seconds for one.

        Returns:
            A frame, or ``None`` on timeout or when the reader has ended and nothing is left.
        """
        return self._buffer.get(timeout)

    def wait_for(self, *states: StreamState, timeout: float) -> bool:
        """Waits until the reader is in one of ``states``; returns whether it got there."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state in states, timeout)

    def start(self) -> None:
        """Starts the reader thread."""
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("a reader starts once")
            self._thread = threading.Thread(
                target=self._run, name=f"rtsp-reader {redact(self._url)}", daemon=True
            )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Asks the thread to stop and waits for it.

        A call blocked in FFmpeg returns within the open or read timeout, so the wait is bounded
        by the longer of the two plus a little unless ``timeout`` says otherwise.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._transition(StreamState.STOPPED)
            self._buffer.close()
            return
        if timeout is None:
            timeout = max(self._settings.open_timeout_s, self._settings.read_timeout_s) + 2.0
        thread.join(timeout)

    def __enter__(self) -> RtspReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reader thread.

    def _transition(self, new: StreamState) -> None:
        with self._cond:
            if new is self._state:
                return
            if new not in _TRANSITIONS[self._state]:
                raise InvalidTransitionError(f"{self._state.value} -> {new.value}")
            self._state = new
            self._cond.notify_all()
        log.info("rtsp source %s: %s", redact(self._url), new.value)
        if self._on_state is not None:
            try:
                self._on_state(new)
            except Exception:  # a listener's bug must not stop the reader
                log.exception("state listener failed")

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                self._transition(StreamState.CONNECTING)
                delivered_before = self._received
                try:
                    checked = check_source_url(self._url, self._policy)
                    self._stream(checked)
                    continue  # returned normally: asked to stop
                except (InvalidSourceURLError, SourceURLForbiddenError) as exc:
                    # The name now resolves somewhere refused: retrying cannot help.
                    self._fail(exc)
                    return
                except IngestError as exc:
                    error = exc
                if self._stop.is_set():
                    break
                failures = 1 if self._received > delivered_before else failures + 1
                with self._cond:
                    self._last_error = error
                log.warning("rtsp source %s: %s", redact(self._url), error.message)
                limit = self._settings.max_attempts
                if limit is not None and failures >= limit:
                    self._fail(error)
                    return
                delay = backoff_delay(self._settings, failures, self._rng)
                with self._cond:  # known before the state change, so its listeners see them
                    self._reconnects += 1
                    self._failures = failures
                    self._next_attempt_at = time.time() + delay
                self._transition(StreamState.RECONNECTING)
                self._stop.wait(delay)
                with self._cond:
                    self._next_attempt_at = None
            self._transition(StreamState.STOPPED)
        finally:
            self._buffer.close()

    def _fail(self, error: IngestError) -> None:
        with self._cond:
            self._last_error = error
        self._transition(StreamState.FAILED)

    def _stream(self, checked: CheckedURL) -> None:
        """Connects once and decodes until stopped (returns) or the connection fails (raises)."""
        s = self._settings
        with self._cond:
            self._connections += 1
            connection = self._connections
        options = {
            "rtsp_transport": s.transport,
            # Socket I/O timeout of the RTSP demuxer, in microseconds.
            "timeout": str(int(s.read_timeout_s * 1_000_000)),
        }
        started = time.monotonic()
        try:
            container = av.open(
                checked.connect_url,
                mode="r",
                format="rtsp",
                options=options,
                timeout=(s.open_timeout_s, s.read_timeout_s),
            )
        except av.error.FFmpegError as exc:
            raise _open_error(exc, checked, s.open_timeout_s) from exc
        clock = _Clock()
        try:
            if not container.streams.video:
                raise SourceError(f"the source {checked.redacted} sends no video stream")
            stream = container.streams.video[0]
            self._sampler.reset()
            for frame in container.decode(stream):
                if self._stop.is_set():
                    return
                self._on_frame(frame, connection, clock)
            raise SourceError(f"the source {checked.redacted} ended the stream")
        except av.error.FFmpegError as exc:
            waited = time.monotonic() - clock.last_arrival(started)
            raise _connect_error(exc, checked, s.read_timeout_s, waited) from exc
        finally:
            container.close()

    def _on_frame(self, frame: VideoFrame, connection: int, clock: _Clock) -> None:
        now = time.monotonic()
        source_time = clock.time(frame.time, now)
        with self._cond:
            self._received += 1
            streaming = self._state is StreamState.STREAMING
            self._failures = 0
        if not streaming:
            self._transition(StreamState.STREAMING)
        if not self._sampler.accept(source_time):
            return
        image = to_rgb(frame, scaled_size(frame.width, frame.height, self._settings.short_side))
        with self._cond:
            index = self._sampled
            self._sampled += 1
        self._buffer.put(
            LiveFrame(
                image=image,
                index=index,
                source_time_s=source_time,
                received_at=now,
                connection=connection,
            )
        )


class _Clock:
    """Frame times of one connection: the source's timestamps, with gaps filled.

    A frame without a timestamp after timed ones is placed by the wall time since the last timed
    frame; a source that never sends timestamps is timed by arrival.
    """

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None  # (source time, arrival)
        self._last_arrival: float | None = None
        self._frames = 0

    def last_arrival(self, default: float) -> float:
        """When the last frame arrived, ``default`` before the first."""
        return default if self._last_arrival is None else self._last_arrival

    def time(self, source_time: float | None, now: float) -> float | None:
        self._last_arrival = now
        self._frames += 1
        if source_time is not None:
            self._last = (source_time, now)
            return source_time
        if self._last is not None:
            return self._last[0] + (now - self._last[1])
        return None if self._frames == 1 else now


def _open_error(exc: av.error.FFmpegError, checked: CheckedURL, timeout: float) -> IngestError:
    """Why a connection could not be opened, told alike for every failure to reach an RTSP
    server: refused, unreachable, silent and non-RTSP ports must not be told apart, or the
    service would map a stranger's network for its callers. Only an RTSP server's own answer
    (no such stream, credentials refused) is named."""
    if isinstance(exc, av.error.HTTPNotFoundError):
        return SourceError(f"the source {checked.redacted} has no such stream (404)")
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return SourceError(f"the source {checked.redacted} refused the credentials")
    return SourceUnreachableError(
        f"no RTSP stream could be opened at {checked.redacted} (refused, unreachable, not an "
        f"RTSP server or no answer within {timeout:g} s)"
    )


def _connect_error(
    exc: av.error.FFmpegError, checked: CheckedURL, timeout: float, waited: float
) -> IngestError:
    where = checked.redacted
    # FFmpeg's RTSP demuxer reports a reply that never came as invalid data, so a failure that
    # took the whole timeout is judged by the time it took.
    timed_out = waited >= 0.9 * timeout
    if (
        timed_out
        or isinstance(exc, av.error.ExitError | TimeoutError)
        or exc.errno == errno.ETIMEDOUT
    ):
        return SourceTimeoutError(f"the source {where} did not answer within {timeout:g} s")
    if isinstance(exc, ConnectionError) or exc.errno in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
    ):
        return SourceUnreachableError(f"the source {where} cannot be reached ({exc.strerror})")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return SourceError(f"the source {where} has no such stream (404)")
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return SourceError(f"the source {where} refused the credentials")
    return SourceError(f"the source {where} failed: {exc.strerror}")
