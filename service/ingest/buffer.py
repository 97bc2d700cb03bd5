"""A small thread-safe frame buffer where the newest frame wins."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestBuffer(Generic[T]):
    """Holds at most ``capacity`` items; putting into a full buffer drops the oldest.

    A live source must never wait for its consumer (it would fall behind real time), so the
    producer always succeeds and the consumer gets the freshest frames; drops are counted.
    """

    def __init__(self, capacity: int) -> None:
        """Creates an empty buffer.

        Args:
            capacity: Items held; at least 1.
        """
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Adds an item; returns whether an older item was dropped to make room."""
        with self._cond:
            dropped = len(self._items) >= self._capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Takes the oldest item held, waiting up to ``timeout`` seconds for one.

        Returns:
            The item, or ``None`` on timeout or once the buffer is closed and empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._items.popleft()

    def close(self) -> None:
        """Wakes waiting consumers; items still held can be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
