"""The worker's heartbeat, in a thread of its own so it keeps beating through a long batch.

A worker is alive while its heartbeat hash exists; a batch of clips on a CPU can take longer than
the heartbeat TTL, and a worker that missed its beats for that long would see its sessions adopted
and its jobs reclaimed while it still runs them. The beat itself (what it writes) is the worker's
callable; this module only keeps time and survives errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat`` every ``interval_s`` seconds in a daemon thread until stopped.

    A beat that raises (Redis down) is logged, at most once per ``quiet_s``, and the next one
    tries again.
    """

    def __init__(
        self, interval_s: float, beat: Callable[[], None], *, quiet_s: float = 10.0
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.beat = beat
        self.quiet_s = quiet_s
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = float("-inf")

    def start(self) -> None:
        """Starts the thread (the first beat comes one interval from now)."""
        if self._thread is not None:
            raise RuntimeError("a heartbeat starts once")
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the thread and waits for a beat in progress to end, so none follows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:
                self.failures += 1
                now = time.monotonic()
                if now - self._last_warning >= self.quiet_s:
                    self._last_warning = now
                    log.warning("heartbeat failed (%d so far): %s", self.failures, exc)
