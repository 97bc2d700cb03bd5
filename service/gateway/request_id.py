"""Request ids: one per HTTP request or WebSocket, on the answer, in error bodies and in the logs.

A client's own ``X-Request-ID`` is kept when it is short and plain (1-64 letters, digits, ``.``,
``_``, ``-``), so a caller can follow its id through the logs; anything else gets a fresh one,
so a header cannot inject text into log lines. The id is answered as ``X-Request-ID``, put in the
scope (:func:`request_id_of`) for the WebSocket events the gateway sends, and set in
:data:`service.logs.request_id_var` for log records and error bodies.

The middleware is the outermost layer: it also writes the access log line (method, route
template, status, duration, client address and key name; never the query string or headers)
and turns an exception nothing else handled into a 500 in the error shape, logged with its
traceback.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.gateway.errors import error_body
from service.logs import request_id_var

HEADER = "x-request-id"
SCOPE_KEY = "vidrec.request_id"
MAX_CHARS = 64
_PLAIN = re.compile(rf"^[A-Za-z0-9._-]{{1,{MAX_CHARS}}}$")
# The scope key app.py's routes use for a route label set before routing.
_EARLY_ROUTE_KEY = "vidrec.route"
# Where service.gateway.auth leaves the calling key's name.
_KEY_NAME_SCOPE_KEY = "vidrec.key_name"

access_log = logging.getLogger("service.gateway.access")
log = logging.getLogger(__name__)


def request_id_of(scope: Scope) -> str | None:
    """The id of the request or WebSocket whose scope this is."""
    rid = scope.get(SCOPE_KEY)
    return rid if isinstance(rid, str) else None


def choose_request_id(given: str | None) -> str:
    """``given`` when short and plain, else a fresh id (32 hex digits)."""
    if given is not None and _PLAIN.match(given):
        return given
    return uuid.uuid4().hex


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/jobs/{job_id}``), never the raw path."""
    route = scope.get("route")
    if isinstance(route, BaseRoute):
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(path, str):
            return path
    early = scope.get(_EARLY_ROUTE_KEY)
    return early if isinstance(early, str) else "<unmatched>"


class RequestIdMiddleware:
    """Gives each request an id, answers it, logs the request; the outermost layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = choose_request_id(Headers(scope=scope).get(HEADER))
        scope[SCOPE_KEY] = rid
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 0
        header = (HEADER.encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), header]
            elif kind == "websocket.accept":
                status = 101
                message["headers"] = [*message.get("headers", []), header]
            elif kind == "websocket.close" and status == 0:
                status = 403  # closed before accepting: the server answers 403
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", _method(scope), route_label(scope))
            if status == 0:
                status = 500
                await _internal_error(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 2)
            access_log.info(
                "%s %s %d",
                _method(scope),
                scope.get("path", ""),
                status,
                extra={
                    "route": route_label(scope),
                    "method": _method(scope),
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": _client(scope),
                    "principal": scope.get(_KEY_NAME_SCOPE_KEY),
                },
            )
            request_id_var.reset(token)


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _method(scope: Scope) -> str:
    return str(scope.get("method", "WS"))


async def _internal_error(scope: Scope, receive: Receive, send: Send) -> None:
    """A 500 in the error shape (HTTP), or a close with 1011 (a WebSocket not yet accepted)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011, "reason": "internal"})
        return
    body = error_body("internal", "the gateway failed to handle the request; it has been logged")
    await JSONResponse(body, status_code=500)(scope, receive, send)
