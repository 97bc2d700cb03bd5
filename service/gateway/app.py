"""The FastAPI application: routes, error shape, request metrics, and the Redis client's lifetime.

The gateway holds no model and never imports torch or ``model_core``: it validates what it can
cheaply (sizes, containers, URLs, JSON shapes), puts work on Redis and relays answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.gateway.body_guard import EDGE_RESPONSES, BodyGuardMiddleware
from service.gateway.clips import ROUTE_SCOPE_KEY
from service.gateway.clips import router as clips_router
from service.gateway.errors import install_error_handlers
from service.gateway.head import HeadAsGetMiddleware
from service.gateway.page import router as page_router
from service.gateway.ratelimit import Limits
from service.gateway.request_id import RequestIdMiddleware
from service.gateway.security import install_security
from service.gateway.state import Gateway
from service.gateway.streams import router as streams_router
from service.gateway.system import router as system_router
from service.keys import Keys
from service.metrics import GatewayMetrics
from service.queue import ClipJobs, EventFanout, EventReader, SessionDirectory, WorkerDirectory
from service.redis_conn import async_client
from service.settings import Settings

log = logging.getLogger(__name__)

# Route label of requests that matched no route, so scanners cannot blow up label cardinality.
UNMATCHED_ROUTE = "<unmatched>"

DESCRIPTION = """\
Streaming video action recognition. Upload a clip (`POST /v1/clips`), stream frames over a
WebSocket (`/v1/streams/live`), or register an RTSP camera (`POST /v1/streams`), and get action
labels with the latency and the compute each answer cost.

Every refusal is a 4xx with `{"error": {"code": ..., "message": ...}}`.
"""


class RequestMetricsMiddleware:
    """Counts requests by route template, method and status, and times HTTP requests.

    Pure ASGI (no ``BaseHTTPMiddleware``), so streamed bodies and WebSockets pass untouched. The
    route template is read after routing (FastAPI leaves the matched route in the scope), never
    the raw path. A WebSocket counts once, as ``WS`` with 101 when accepted or 403 when refused
    before accepting.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(
                _route_template(scope), scope["method"], status, time.perf_counter() - start
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Counts the connection when it is accepted (101) or refused (403), not when it ends,
        so a scrape during a stream already shows it."""
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            if not counted:
                counted = True
                self.metrics.http_requests.labels(
                    route=_route_template(scope), method="WS", status=str(status)
                ).inc()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "websocket.accept":
                count(101)
            elif message["type"] in ("websocket.close", "websocket.http.response.start"):
                count(int(message.get("status", 403)))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            count(500)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    if isinstance(route, BaseRoute):
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(path, str):
            return str(scope.get("root_path", "")).rstrip("/") + path
    early = scope.get(ROUTE_SCOPE_KEY)
    return early if isinstance(early, str) else UNMATCHED_ROUTE


def create_app(settings: Settings) -> FastAPI:
    """The gateway for ``settings``; Redis is connected when the app starts (its lifespan).

    Raises:
        ValueError: ``settings.redis_url`` is not set (the gateway role needs a server; ``vidrec
            serve`` starts an embedded one and passes its URL).
    """
    if settings.redis_url is None:
        raise ValueError(
            "the gateway needs a Redis server: set VIDREC_REDIS_URL (or run `vidrec serve`, which "
            "starts an embedded one)"
        )
    redis_url = settings.redis_url
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # At most one pooled connection per request in flight (a socket's relay holds none
        # while it waits: the fan-out's one blocking read serves every socket).
        client = async_client(redis_url, max_connections=settings.http_max_connections + 64)
        keys = Keys.from_settings(settings)
        fanout = EventFanout(client, keys)
        app.state.gateway = Gateway(
            settings=settings,
            keys=keys,
            redis=client,
            jobs=ClipJobs(client, keys, settings),
            sessions=SessionDirectory(client, keys, settings),
            events=EventReader(client, keys),
            fanout=fanout,
            workers=WorkerDirectory(client, keys),
            metrics=metrics,
            limits=Limits(client, keys, settings),
        )
        try:
            async with fanout:  # stopped before the client: its read must not outlive the pool
                yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="vidrec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=EDGE_RESPONSES,  # 400, 408, 413: the body guard and parsing answer them anywhere
        # /docs and /redoc are served by page.py from local assets (the defaults load a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(clips_router(settings))
    app.include_router(streams_router(settings))
    app.include_router(system_router())
    app.include_router(page_router(app.title))
    app.add_middleware(
        BodyGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        uploads={"/v1/clips": settings.max_upload_bytes},
        timeout_s=settings.body_timeout_s,
        idle_s=settings.body_idle_timeout_s,
        max_head_bytes=settings.http_max_head_bytes,
    )
    install_security(app, settings)  # CORS, Origin, API keys, rate limits
    app.add_middleware(HeadAsGetMiddleware)  # inside the metrics: a HEAD is counted as HEAD
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: ids and logs even on refusals
    return app
