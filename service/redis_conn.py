"""Redis clients from a URL, for the worker (sync) and the gateway (asyncio).

One factory per side so every client is configured alike: raw bytes (uploads and frames are
binary; the queue decodes text itself), a bounded connect time, and a read timeout well above the
longest blocking command the queue sends (``MAX_BLOCK_S``). redis-py's own default read timeout
is 5 s: a ``BLPOP`` that waits its full 5 s slice then fails as a ``TimeoutError``, which the
gateway answered as a false "Redis unavailable".
URLs: ``redis://host:port/db``, ``rediss://...`` (TLS) and ``unix:///path/to.sock?db=0``.
"""

from __future__ import annotations

import redis
import redis.asyncio

CONNECT_TIMEOUT_S = 5.0
# Every blocking command in service/queue (BLPOP, XREAD BLOCK) waits at most this long ...
MAX_BLOCK_S = 5.0
# ... and a read may take this long before the connection counts as dead (a Redis that stopped
# answering without closing the socket must not hang a request for ever).
READ_TIMEOUT_S = MAX_BLOCK_S * 4
# How long a request waits for a pooled connection when every one is in use.
POOL_WAIT_S = 5.0


def sync_client(url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    """A blocking client; close it with ``close()`` (or use it as a context manager)."""
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=READ_TIMEOUT_S,
    )


def async_client(
    url: str,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    max_connections: int | None = None,
) -> redis.asyncio.Redis:
    """An asyncio client; close it with ``await aclose()`` (or ``async with``).

    Args:
        url: The server.
        connect_timeout_s: Bound on connecting.
        max_connections: Pool size; ``None``: redis-py's default (100). The pool blocks (up to
            ``POOL_WAIT_S``) when all are in use instead of failing at once, so a burst of
            requests waits for a connection rather than failing with "Too many connections".
            (The gateway's sockets hold none while they wait for events: one reader per
            gateway serves them all, ``service.queue.fanout``.)
    """
    if max_connections is None:
        return redis.asyncio.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=READ_TIMEOUT_S,
        )
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        decode_responses=False,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=READ_TIMEOUT_S,
    )
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool and closes it


def ping(client: redis.Redis) -> bool:
    """Whether the server answers; connection errors count as no."""
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


async def async_ping(client: redis.asyncio.Redis) -> bool:
    """Whether the server answers; connection errors count as no."""
    try:
        return bool(await client.ping())
    except (redis.RedisError, OSError):
        return False


def ping_url(url: str, *, timeout_s: float = 1.0) -> bool:
    """Whether a server answers at ``url``, with a short bound on connecting and reading."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return ping(client)
    finally:
        client.close()
