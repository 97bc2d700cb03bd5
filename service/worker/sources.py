"""The RTSP reader of one session, seen from the worker's loop.

The reader decodes in its own thread into a small newest-wins buffer; the loop takes what is
there without waiting. A camera that goes away (power, network) is retried for as long as the
session is open, with a backoff capped at ``rtsp_retry_max_s``, so it streams again within about
that long of the camera's return; only a URL the policy refuses fails the session. State changes
arrive from the reader thread on a queue the loop drains, so events and the session hash are only
ever written from the loop's thread.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from service.ingest import LiveFrame, RtspReader, RtspSettings, StreamState
from service.settings import Settings

# What a reader's state means for the session hash's ``state``.
SESSION_STATE: dict[StreamState, str] = {
    StreamState.IDLE: "opening",
    StreamState.CONNECTING: "opening",
    StreamState.STREAMING: "running",
    StreamState.RECONNECTING: "reconnecting",
    StreamState.FAILED: "failed",
}

StateChange = tuple[str, StreamState]
"""(session id, new reader state), as the reader thread reports it."""


class RtspSource:
    """One session's RTSP reader.

    Args:
        session_id: The session.
        url: The source URL, credentials included.
        settings: ``rtsp_fps``, ``session_backlog`` (the reader's buffer), ``rtsp_retry_max_s``
            and the URL policy.
        short_side: Frames are scaled so their short side has this many pixels (the model's
            resize size), inside the decoder's own scaler.
        changes: Where the reader thread reports its state changes.

    Raises:
        IngestError: The URL is malformed or refused by the policy (nothing connects).
    """

    def __init__(
        self,
        session_id: str,
        url: str,
        settings: Settings,
        short_side: int | None,
        changes: queue.SimpleQueue[StateChange],
    ) -> None:
        self.session_id = session_id
        cap = settings.rtsp_retry_max_s
        rtsp = RtspSettings(
            target_fps=settings.rtsp_fps,
            buffer_size=settings.session_backlog,
            short_side=short_side,
            backoff_initial_s=min(RtspSettings.backoff_initial_s, cap),
            backoff_max_s=cap,
            max_attempts=None,  # until the session is deleted
        )
        self.reader = RtspReader(
            url,
            rtsp,
            settings.url_policy(),
            on_state=lambda state: changes.put((session_id, state)),
        )
        self._dropped_seen = 0
        self.streamed = False

    def start(self) -> None:
        """Starts the reader thread."""
        self.reader.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Asks the reader to stop; waits at most ``timeout`` seconds for its thread (a thread
        blocked in FFmpeg ends by itself within its open or read timeout)."""
        self.reader.stop(timeout)

    def frames(self) -> list[LiveFrame]:
        """The frames buffered now, oldest first, without waiting."""
        out = []
        while (frame := self.reader.read(timeout=0)) is not None:
            out.append(frame)
        return out

    def new_drops(self) -> int:
        """Frames the reader's buffer dropped since the last call (the loop was slower)."""
        dropped = self.reader.status().frames_dropped
        new, self._dropped_seen = dropped - self._dropped_seen, dropped
        return max(new, 0)

    def session_state(self, state: StreamState) -> str | None:
        """The session state for a reader state; ``None`` for ``stopped`` (the worker's doing).

        A reconnection (after streaming, or after a failed attempt) that has not streamed again
        yet stays ``reconnecting``.
        """
        if state is StreamState.STREAMING:
            self.streamed = True
        if state is StreamState.STOPPED:
            return None
        if state in (StreamState.CONNECTING, StreamState.IDLE) and (
            self.streamed or self.reader.status().failures
        ):
            return "reconnecting"
        return SESSION_STATE[state]

    def health(self) -> dict[str, Any]:
        """The session hash's ``source_health``: the reader's state and counters, and while
        reconnecting the failed attempts so far and when the next one is due."""
        status = self.reader.status()
        error = status.last_error
        next_at = status.next_attempt_at
        return {
            "state": status.state.value,
            "frames_received": status.frames_received,
            "frames_sampled": status.frames_sampled,
            "frames_dropped": status.frames_dropped,
            "connections": status.connections,
            "reconnects": status.reconnects,
            "last_error": None if error is None else {"code": error.code, "message": error.message},
            "attempts": status.failures,
            "next_attempt_at": next_at,
            "next_attempt_in_s": None if next_at is None else max(0.0, next_at - time.time()),
            "updated": time.time(),
        }
