"""The gateway's access layers, installed in one place so their order holds.

From the outside in: CORS (answers browsers' preflights), the Origin guard (refuses pages of
other origins), authentication (who is calling, may they call this route), the rate limit (per
caller), then the app's own layers (body limits) and the routes. Refusals come from the cheapest
layer that can decide; none of them reads a request body.
"""

from __future__ import annotations

from fastapi import FastAPI

from service.gateway.auth import AuthMiddleware, key_store
from service.gateway.origin import (
    CORS_EXPOSE,
    CORS_HEADERS,
    CORS_METHODS,
    ErrorShapedCORS,
    OriginGuard,
)
from service.gateway.ratelimit import RateLimitMiddleware
from service.settings import Settings


def install_security(app: FastAPI, settings: Settings) -> None:
    """Adds the access layers to ``app`` (call it after the app's inner middleware).

    Raises:
        ValueError: Auth is on and no usable key is configured (the gateway must not start).
    """
    store = key_store(settings)
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(
        AuthMiddleware,
        store=store,
        metrics_admin_only=settings.metrics_admin_only,
    )
    app.add_middleware(OriginGuard, allowed=settings.cors_origins)
    app.add_middleware(
        ErrorShapedCORS,
        allow_origins=settings.cors_origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSE,
        allow_credentials=False,  # keys travel in headers, never in cookies
    )
