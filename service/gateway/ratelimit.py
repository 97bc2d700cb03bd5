"""Rate limits and quotas per key (or per client address when auth is off), kept in Redis.

- Requests: each ``/v1/`` request or WebSocket handshake takes a token from the caller's bucket
  (``VIDREC_RATE_LIMIT_RPS`` a second, bursts of ``VIDREC_RATE_LIMIT_BURST``).
- Holdings: live sessions, RTSP sessions and clip jobs queued or running, each bounded per caller
  (``VIDREC_QUOTA_LIVE_SESSIONS``, ``VIDREC_QUOTA_RTSP_SESSIONS``, ``VIDREC_QUOTA_CLIP_JOBS``);
  the routes create sessions and jobs through :meth:`Limits.hold`.

Both answer 429 with ``Retry-After`` and a message naming the limit and its setting. When Redis
cannot be reached the rate limit lets requests through (the route itself then answers 503):
refusing everything because the limiter is down would turn an outage into a total one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
import redis.asyncio
from starlette.types import ASGIApp, Receive, Scope, Send

from service.gateway.auth import PROTECTED_PREFIX, principal_var
from service.gateway.deny import deny
from service.gateway.errors import ApiError
from service.keys import Keys
from service.queue import Holdings, RateLimiter
from service.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
# A Redis outage is logged at most this often by the rate limiter.
_OUTAGE_LOG_EVERY_S = 10.0
# Quota kind -> (settings field, what it counts).
QUOTAS: dict[str, tuple[str, str]] = {
    "live": ("quota_live_sessions", "live sessions"),
    "rtsp": ("quota_rtsp_sessions", "RTSP sessions"),
    "clips": ("quota_clip_jobs", "clip jobs queued or running"),
}


def _describe(who: str) -> str:
    kind, _, name = who.partition(":")
    return f"the key {name!r}" if kind == "key" else f"the client address {name}"


class Limits:
    """The gateway's rate limiter and quotas.

    Args:
        redis: The gateway's asyncio client.
        keys: Key names.
        settings: The limits.
    """

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys, settings: Settings) -> None:
        self.settings = settings
        rps = settings.rate_limit_rps
        self.rate = RateLimiter(redis, keys, rps, settings.rate_limit_burst) if rps > 0 else None
        self.holdings = Holdings(redis, keys)
        self._outage_logged = 0.0

    async def check_rate(self, who: str) -> ApiError | None:
        """The 429 to answer when ``who`` is over its request rate, else ``None``."""
        if self.rate is None:
            return None
        try:
            verdict = await self.rate.take(who)
        except (redis.RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._outage_logged > _OUTAGE_LOG_EVERY_S:
                self._outage_logged = now
                log.warning("rate limit not checked, Redis unavailable: %s", exc)
            return None
        if verdict.allowed:
            return None
        s = self.settings
        return ApiError(
            429,
            "rate_limited",
            f"too many requests from {_describe(who)}: the limit is {s.rate_limit_rps:g} per "
            f"second with bursts of {s.rate_limit_burst} (VIDREC_RATE_LIMIT_RPS, "
            f"VIDREC_RATE_LIMIT_BURST); retry after {verdict.retry_after_s} s",
            headers={"Retry-After": str(verdict.retry_after_s)},
            retry_after_s=verdict.retry_after_s,
            limit="rate_limit_rps",
        )

    async def hold(
        self, kind: str, create: Callable[[], Awaitable[T]], id_of: Callable[[T], str]
    ) -> T:
        """Creates a session or job of ``kind`` within the caller's quota.

        Args:
            kind: ``live``, ``rtsp`` or ``clips``.
            create: Creates it.
            id_of: Its id, recorded as held until it ends.

        Raises:
            ApiError: 429 when the caller already holds its quota of them.
        """
        field, what = QUOTAS[kind]
        limit = int(getattr(self.settings, field))
        principal = principal_var.get()
        if principal is None or limit == 0:
            return await create()
        who = principal.who
        token = await self.holdings.reserve(kind, who, limit)
        if token is None:
            retry = self.settings.retry_after_s
            raise ApiError(
                429,
                "quota_exceeded",
                f"{_describe(who)} already holds {limit} {what}, its quota "
                f"(VIDREC_{field.upper()}); end one or retry after {retry} s",
                headers={"Retry-After": str(retry)},
                retry_after_s=retry,
                limit=field,
            )
        try:
            item = await create()
        except Exception:
            # (A cancelled request leaves its reservation to lapse by itself.)
            await self.holdings.release(kind, who, token)
            raise
        await self.holdings.confirm(kind, who, token, id_of(item))
        return item


def limits_of(scope: Scope) -> Limits | None:
    """The app's :class:`Limits`, once its lifespan has made them."""
    app = scope.get("app")
    gateway = getattr(getattr(app, "state", None), "gateway", None)
    limits = getattr(gateway, "limits", None)
    return limits if isinstance(limits, Limits) else None


class RateLimitMiddleware:
    """Takes a token per ``/v1/`` request or handshake; answers 429 when the bucket is empty."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_var.get()
        if (
            scope["type"] in ("http", "websocket")
            and str(scope.get("path", "")).startswith(PROTECTED_PREFIX)
            and principal is not None
            and (limits := limits_of(scope)) is not None
            and (refusal := await limits.check_rate(principal.who)) is not None
        ):
            await deny(
                scope, receive, send, refusal.status, refusal.code, refusal.message,
                headers=refusal.headers, **refusal.extra,
            )  # fmt: skip
            return
        await self.app(scope, receive, send)
