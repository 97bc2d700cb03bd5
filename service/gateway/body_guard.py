"""Bounds on every request body, in bytes and in time, applied while it streams in.

A declared ``Content-Length`` over the route's limit is refused with 413 before a byte is read; a
chunked body is counted and cut off with 413 at the limit, so no body fills memory or disk. Upload
routes get their file limit plus room for the multipart framing; every other route (JSON bodies)
gets ``max_body_bytes``. A body must also arrive in time: no pause longer than the idle bound and
no more than the total bound from the first read to the last byte, else 408 and the connection is
closed, so a client sending one byte a second cannot hold a request open for ever. The request
line and headers are bounded too (431): h11 bounds a head that arrives in pieces, not one that
arrives whole in a single read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.gateway.clips import FORM_OVERHEAD_BYTES, ROUTE_SCOPE_KEY
from service.gateway.errors import error_body
from service.wire import ErrorBody

CLOSE = {"Connection": "close"}

# What any route may answer before it runs, documented on every operation: a body the server
# cannot parse, one that does not arrive in time, one over its limit, a head over its limit.
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request (body or form not parseable)"},
    408: {"model": ErrorBody, "description": "The request body did not arrive in time"},
    413: {"model": ErrorBody, "description": "The request body is over its limit"},
    431: {"model": ErrorBody, "description": "The request line and headers are over their limit"},
}


class BodyTooLargeError(StarletteHTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; an HTTPException, so FastAPI
    lets it through its body and form parsing to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is too large; at most {limit} bytes are accepted here",
            headers=CLOSE,
        )
        self.extra = {"max_bytes": limit}  # the error's fields, as the route's own 413 has them


class BodyTimeoutError(StarletteHTTPException):
    """Raised from ``receive`` when the body does not arrive in time (408)."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message, headers=CLOSE)


class BodyGuardMiddleware:
    """Bounds the body of every HTTP request in size and time (see the module docstring).

    Args:
        app: The application.
        max_bytes: Limit of a body on any route not in ``uploads``.
        uploads: Upload routes (``POST`` paths) and their file limits; the body may be
            ``FORM_OVERHEAD_BYTES`` larger for the multipart framing and form fields.
        timeout_s: Longest time from the first read of the body to its last byte.
        idle_s: Longest wait for the next piece of the body.
        max_head_bytes: Limit of the request target plus headers (WebSocket handshakes too).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        uploads: Mapping[str, int],
        timeout_s: float,
        idle_s: float,
        max_head_bytes: int,
    ) -> None:
        self.app = app
        self.max_head_bytes = max_head_bytes
        self.max_bytes = max_bytes
        self.uploads = dict(uploads)
        self.timeout_s = timeout_s
        self.idle_s = idle_s

    def limits(self, scope: Scope) -> tuple[int, int]:
        """The body limit of this request, and the limit its refusal states."""
        upload = self.uploads.get(scope["path"]) if scope["method"] == "POST" else None
        if upload is None:
            return self.max_bytes, self.max_bytes
        return upload + FORM_OVERHEAD_BYTES, upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        head = _head_bytes(scope)
        if head > self.max_head_bytes:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009, "reason": "head_too_large"})
                return
            body = error_body(
                "head_too_large",
                f"the request line and headers have {head} bytes; at most {self.max_head_bytes}",
            )
            await JSONResponse(body, status_code=431, headers=CLOSE)(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, shown = self.limits(scope)
        if scope["path"] in self.uploads:
            scope[ROUTE_SCOPE_KEY] = scope["path"]  # the route label, should it answer early
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = error_body(
                "too_large",
                f"the request body has {declared} bytes; at most {shown} are accepted here",
                max_bytes=shown,
            )
            await JSONResponse(body, status_code=413, headers=CLOSE)(scope, receive, send)
            return
        total = 0
        deadline: float | None = None
        complete = False

        async def guarded() -> Message:
            nonlocal total, deadline, complete
            if complete:  # the body is in: later reads wait for a disconnect, unbounded
                return await receive()
            now = time.monotonic()
            deadline = deadline or now + self.timeout_s
            wait = min(self.idle_s, deadline - now)
            message = None
            if wait > 0:
                with anyio.move_on_after(wait):
                    message = await receive()
            if message is None:
                raise BodyTimeoutError(
                    f"the request body did not arrive in time (at most {self.idle_s:g} s "
                    f"between pieces, {self.timeout_s:g} s in all)"
                )
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise BodyTooLargeError(shown)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, guarded, send)


def _head_bytes(scope: Scope) -> int:
    """Size of the request target and headers as received (near enough: no separators)."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return target + sum(len(name) + len(value) for name, value in scope["headers"])
