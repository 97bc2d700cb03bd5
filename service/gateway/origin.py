"""Which browser origins may use the API: CORS for HTTP, the same allow-list for WebSockets.

``VIDREC_CORS_ORIGINS`` lists the origins (``https://app.example:8443``, or ``*``) whose pages may
call the API from another origin; by default none may, and pages served by the gateway itself
(same origin) always may. Browsers enforce CORS on HTTP reads but not on WebSocket handshakes or
on the form posts they send without asking, so :class:`OriginGuard` refuses, with 403, a
WebSocket handshake or a ``/v1/`` request whose ``Origin`` header is neither listed nor the
gateway's own. Clients that are not browsers send no ``Origin`` and pass.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.gateway.auth import PROTECTED_PREFIX
from service.gateway.deny import deny
from service.gateway.errors import error_body

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
CORS_METHODS = ("GET", "POST", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
CORS_EXPOSE = ("X-Request-ID", "Retry-After", "WWW-Authenticate")


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names the host and port the request was sent to (its ``Host``)."""
    if not host:
        return False
    try:
        parts = urlsplit(origin)
        target = urlsplit(f"//{host}")
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if parts.hostname is None or default is None:
            return False
        return parts.hostname == target.hostname and (parts.port or default) == (
            target.port or default
        )
    except ValueError:  # a malformed port or address
        return False


def origin_allowed(origin: str, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a browser page at ``origin`` may use the API reached as ``host``."""
    return "*" in allowed or origin.rstrip("/").lower() in allowed or same_origin(origin, host)


class OriginGuard:
    """Refuses WebSocket handshakes and ``/v1/`` requests from origins not allowed."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        guarded = kind == "websocket" or (
            kind == "http"
            and scope.get("method") != "OPTIONS"
            and str(scope.get("path", "")).startswith(PROTECTED_PREFIX)
        )
        if guarded:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not origin_allowed(origin, headers.get("host"), self.allowed):
                await deny(
                    scope, receive, send, 403, "origin_not_allowed",
                    f"pages from the origin {origin[:200]!r} may not use this API; the operator "
                    "lists allowed origins in VIDREC_CORS_ORIGINS",
                )  # fmt: skip
                return
        await self.app(scope, receive, send)


class ErrorShapedCORS(CORSMiddleware):
    """Starlette's CORS middleware, with its refused preflights in the project's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode(errors="replace")
        origin = request_headers.get("origin", "")[:200]
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers.pop("content-type", None)
        return JSONResponse(
            error_body(
                "cors_refused",
                f"{reason} (origin {origin!r}); allowed origins are set in VIDREC_CORS_ORIGINS",
            ),
            status_code=response.status_code,
            headers=headers,
        )
