"""``HEAD`` answered wherever ``GET`` is, as HTTP asks (RFC 9110, 9.3.2).

FastAPI registers only the methods a route names, so ``HEAD /healthz`` was a 405 although a load
balancer or ``curl -I`` expects the GET answer's status and headers. This middleware runs a HEAD
request as a GET and drops the body it would have sent; ``Content-Length`` stays that of the GET
answer. Routes that name HEAD themselves (the page's files) get a GET too, which answers alike.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """Pure ASGI, so streamed answers and WebSockets pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # swallow the body's parts; the last one ends the answer
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
