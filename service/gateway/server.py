"""How uvicorn serves the gateway: connection limits and timeouts that hold against slow clients.

uvicorn bounds the wait between two requests of a keep-alive connection, but not the wait for the
first request nor for a request head sent a byte at a time, so idle or half-open connections
would pile up until the process runs out of file descriptors. The protocol here (uvicorn's h11
protocol, whose limits are settings) closes a connection whose request head does not arrive
within ``http_head_timeout_s`` and refuses connections beyond ``http_max_connections`` at once;
request bodies are bounded in time by :mod:`service.gateway.body_guard`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.settings import Settings

log = logging.getLogger(__name__)

# Descriptors the process needs beyond its client connections (Redis pool, logs, libraries).
FD_HEADROOM = 256
# A refused connection is logged at most this often, so a flood cannot flood the log too.
REFUSAL_LOG_INTERVAL_S = 10.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head and a connection cap.

    Subclasses made by :func:`guarded_protocol` set the two class attributes.
    """

    head_timeout_s: float = 10.0
    max_connections: int = 1000
    _last_refusal: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of a head after a keep-alive pause
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()  # the head is in: the body has its own bounds

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._last_refusal > REFUSAL_LOG_INTERVAL_S:
            GuardedH11Protocol._last_refusal = now
            log.warning(
                "refusing connections: %d open, at most %d (VIDREC_HTTP_MAX_CONNECTIONS)",
                len(self.connections) - 1,
                self.max_connections,
            )
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class for ``settings`` (uvicorn takes a class, not an instance)."""
    return type(
        "GatewayH11Protocol",
        (GuardedH11Protocol,),
        {
            "head_timeout_s": settings.http_head_timeout_s,
            "max_connections": settings.http_max_connections,
        },
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.Config`` that bound connections, heads and messages."""
    return {
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.http_keepalive_s,
        # uvicorn answers 503 past this many connections or requests in flight; the protocol
        # refuses connections past http_max_connections before that.
        "limit_concurrency": settings.http_max_connections + 1,
        "h11_max_incomplete_event_size": settings.http_max_head_bytes,
        # A WebSocket message is a frame (or a small control message): nothing larger is read.
        "ws_max_size": settings.frame_max_bytes + 64 * 1024,
    }


def raise_fd_limit(settings: Settings) -> int:
    """Raises the soft limit on open files to the hard limit when the connection cap needs it;
    returns the soft limit now in force (warns when it is still too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = settings.http_max_connections + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open-file limit (%d) is below VIDREC_HTTP_MAX_CONNECTIONS + %d (%d): lower the "
            "setting or raise the limit (ulimit -n)",
            soft,
            FD_HEADROOM,
            needed,
        )
    return soft
