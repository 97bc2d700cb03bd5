"""``GET /v1/models``, ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` says the process runs (a liveness probe: restart me if this fails); ``/readyz`` says
it can do work (a readiness probe: Redis answers and a live worker has its models loaded), so a
load balancer sends no traffic to a gateway that would only answer 503s.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from service import wire
from service.gateway.catalog import LiveCatalog
from service.gateway.responses import ERROR_DESCRIPTIONS, answer, errors, relay
from service.gateway.state import Gateway, get_gateway
from service.metrics import CONTENT_TYPE, Scrape
from service.redis_conn import async_ping

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.RedisError, OSError)


def router() -> APIRouter:
    """The system routes."""
    api = APIRouter(tags=["system"])

    @api.get(
        "/v1/models",
        response_model=wire.ModelList,
        responses=errors(),
        summary="Models the live workers serve",
    )
    async def models(gw: Annotated[Gateway, Depends(get_gateway)]) -> JSONResponse:
        """Each model's labels, frames, image size and GMACs, with the workers serving it for
        clips and for live sessions, and the defaults a request without ``model`` gets."""
        catalog = LiveCatalog.of(await gw.workers.live())
        defaults = {
            "clip": catalog.default("clip", gw.settings.clip_model),
            "live": catalog.default("live", gw.settings.live_model),
        }
        listing: dict[str, Any] = {
            "models": catalog.describe(),  # the workers' own rows: parsed leniently
            "defaults": defaults,
            "workers": [w.worker_id for w in catalog.workers],
        }
        return relay(wire.ModelList, listing)

    @api.get(
        "/healthz",
        response_model=wire.Health,
        responses={500: {"model": wire.ErrorBody, "description": ERROR_DESCRIPTIONS[500]}},
        summary="Liveness: the process runs",
    )
    async def healthz() -> JSONResponse:
        """Always 200 while the process runs; it touches nothing outside."""
        return answer(wire.Health(status="ok"))

    @api.get(
        "/readyz",
        response_model=wire.Readiness,
        summary="Readiness: Redis answers and a live worker has its models loaded",
        responses={
            503: {"model": wire.Readiness, "description": "Not ready; reason says why"},
            500: {"model": wire.ErrorBody, "description": ERROR_DESCRIPTIONS[500]},
        },
    )
    async def readyz(gw: Annotated[Gateway, Depends(get_gateway)]) -> JSONResponse:
        """200 when Redis answers and at least one live worker advertises loaded models."""
        if not await async_ping(gw.redis):
            return _not_ready("redis does not answer", redis_ok=False)
        try:
            workers = await gw.workers.live()
        except _REDIS_ERRORS as exc:
            return _not_ready(f"redis error: {exc}", redis_ok=False)
        loaded = [w for w in workers if w.models or w.live_models]
        if not workers:
            return _not_ready("no live worker", redis_ok=True)
        if not loaded:
            return _not_ready(
                f"{len(workers)} live worker(s), none with models loaded yet",
                redis_ok=True,
                workers=len(workers),
            )
        ready = {"ready": True, "redis": True, "workers": len(workers)}
        ready["workers_ready"] = len(loaded)
        return answer(wire.build(wire.Readiness, ready))

    @api.get(
        "/metrics",
        summary="Prometheus metrics of the gateway and every live worker",
        response_class=PlainTextResponse,  # documented as the text it is, not as JSON
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(gw: Annotated[Gateway, Depends(get_gateway)]) -> Response:
        """Text exposition; worker families carry a ``worker`` label."""
        scrape = Scrape()
        try:
            scrape.queue_depth = await gw.jobs.depth()
            scrape.active_sessions = await gw.sessions.count()
            scrape.workers_live = len(await gw.workers.live())
            scrape.worker_texts = await gw.workers.metrics()
        except _REDIS_ERRORS as exc:
            # Still answer with the gateway's own figures: a scrape that fails shows nothing.
            log.warning("metrics: redis unavailable: %s", exc)
        return Response(gw.metrics.render(scrape), media_type=CONTENT_TYPE)

    return api


def _not_ready(reason: str, *, redis_ok: bool, workers: int = 0) -> JSONResponse:
    body = {"ready": False, "reason": reason, "redis": redis_ok, "workers": workers}
    return answer(wire.build(wire.Readiness, body), 503)
