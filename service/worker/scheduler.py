"""The books of a worker's live sessions: which have a frame due, their backlogs, drops and
pending budget changes. Bookkeeping only: no tensors (:mod:`service.worker.runner` has them), no
Redis (:mod:`service.worker.sessions` writes what it decides).

Each session keeps at most ``backlog`` frames waiting; when more arrive the oldest go (counted as
drops), so a stream faster than the worker falls behind by a bounded amount and the newest frames
win. A budget change applies from the frames sent after it: with frames waiting it rides on the
next frame to arrive, and survives that frame being dropped.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    """A frame waiting for its step: encoded bytes (live) or an image (RTSP).

    Attributes:
        input_index: The frame's index as its source numbered it.
        data: The encoded image (live frames; decoded only when its step comes, so a dropped
            frame costs nothing).
        image: The decoded image (RTSP frames).
        received_wall: When the gateway received it, unix seconds.
        received_mono: When the RTSP reader decoded it, ``time.monotonic()``.
        budget: A budget change that takes effect with this frame.
    """

    input_index: int | None
    data: bytes | None = None
    image: np.ndarray | None = None
    received_wall: float | None = None
    received_mono: float | None = None
    budget: dict[str, Any] | None = None

    def latency_ms(self) -> float:
        """Time since it was received, in milliseconds."""
        if self.received_mono is not None:
            return (time.monotonic() - self.received_mono) * 1000.0
        if self.received_wall is not None:
            return max(0.0, time.time() - self.received_wall) * 1000.0
        return 0.0


@dataclass
class Books:
    """What the scheduler keeps of one session.

    Attributes:
        processed: Frames processed, all owners together.
        dropped: Frames dropped (backlog full, or undecodable), all owners together.
        backlog: Frames waiting, oldest first.
        next_budget: A budget change that came after the frames waiting now; it takes effect
            with the next frame to arrive.
        last_frame: When its last frame arrived (or it opened), ``time.monotonic()``.
        dirty: Counters changed since they were last written.
    """

    processed: int
    dropped: int
    backlog: deque[Frame] = field(default_factory=deque)
    next_budget: dict[str, Any] | None = None
    last_frame: float = field(default_factory=time.monotonic)
    dirty: bool = False


class Scheduler:
    """The books of the sessions of one worker.

    Args:
        backlog: Frames one session may keep waiting.
    """

    def __init__(self, backlog: int) -> None:
        if backlog < 1:
            raise ValueError(f"backlog must be at least 1, got {backlog}")
        self.backlog = backlog
        self.books: dict[str, Books] = {}

    def add(self, session_id: str, processed: int = 0, dropped: int = 0) -> Books:
        """Starts the books of a session, with the counts it brings from elsewhere."""
        books = Books(processed=processed, dropped=dropped)
        self.books[session_id] = books
        return books

    def remove(self, session_id: str) -> Books | None:
        """Closes a session's books (its waiting frames go with them)."""
        return self.books.pop(session_id, None)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self.books

    def push(self, session_id: str, frame: Frame) -> int:
        """Queues a frame; returns how many waiting frames were dropped for it (0 or 1)."""
        books = self.books[session_id]
        books.last_frame = time.monotonic()
        if books.next_budget is not None:
            frame.budget, books.next_budget = books.next_budget, None
        dropped = 0
        if len(books.backlog) >= self.backlog:
            oldest = books.backlog.popleft()
            dropped = 1
            head = books.backlog[0] if books.backlog else frame
            if oldest.budget is not None and head.budget is None:
                head.budget = oldest.budget  # a dropped frame's budget change still happens
        books.backlog.append(frame)
        self.count_drops(session_id, dropped)
        return dropped

    def count_drops(self, session_id: str, count: int) -> None:
        """Counts frames of the session dropped elsewhere (its reader's buffer, a bad frame)."""
        if count:
            books = self.books[session_id]
            books.dropped += count
            books.dirty = True

    def budget_now(self, session_id: str, budget: dict[str, Any]) -> bool:
        """A budget change arrived: ``True`` when it applies now (no frame waits), else it waits
        for the next frame to arrive."""
        books = self.books[session_id]
        if books.backlog:
            books.next_budget = budget
            return False
        books.next_budget = None
        return True

    def pending(self) -> bool:
        """Whether some session has a frame waiting."""
        return any(b.backlog for b in self.books.values())

    def due(self) -> dict[str, Frame]:
        """Takes the oldest waiting frame of every session that has one: the next step's plan."""
        return {sid: books.backlog.popleft() for sid, books in self.books.items() if books.backlog}

    def processed(self, session_ids: list[str]) -> None:
        """Counts one frame processed for each session of a step."""
        for session_id in session_ids:
            books = self.books[session_id]
            books.processed += 1
            books.dirty = True

    def idle(self, session_ids: list[str], idle_s: float) -> list[str]:
        """Those of ``session_ids`` without a frame for more than ``idle_s`` seconds."""
        now = time.monotonic()
        return [sid for sid in session_ids if now - self.books[sid].last_frame > idle_s]

    def dirty(self) -> list[str]:
        """Sessions whose counters changed since they were last written."""
        return [sid for sid, books in self.books.items() if books.dirty]
