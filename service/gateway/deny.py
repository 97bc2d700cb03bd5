"""Refusals sent by middleware, before any route runs, in the project's error shape.

HTTP gets a JSON response. A WebSocket handshake gets the same response as an HTTP denial (the
ASGI ``websocket.http.response`` extension, which uvicorn and Starlette's TestClient provide);
a server without it can only close the handshake, which it answers with 403 (close code 1008).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from service.gateway.errors import error_body

WS_POLICY = 1008


async def deny(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> None:
    """Answers the request or handshake in ``scope`` with ``status`` and the error body."""
    body = error_body(code, message, **extra)
    if scope["type"] == "http":
        await JSONResponse(body, status_code=status, headers=dict(headers or {}))(
            scope, receive, send
        )
        return
    await receive()  # the handshake's websocket.connect, which comes before any answer
    if "websocket.http.response" in (scope.get("extensions") or {}):
        payload = json.dumps(body, separators=(",", ":")).encode()
        raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        raw += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": payload})
        return
    await send({"type": "websocket.close", "code": WS_POLICY, "reason": code})
