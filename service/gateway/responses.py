"""The OpenAPI description of the gateway's answers, and the answers built from the wire models.

Every route declares its success model (``response_model``) and its refusals (``responses=``
with :class:`service.wire.ErrorBody`), so the OpenAPI document types every answer a client can
get, the ones a middleware gives too (401 and 403 from the API keys, 429 from the rate limit, 413
from the body limit, 500 and 503 for failures).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from service.wire import ErrorBody, WireModel

log = logging.getLogger(__name__)

# Why each status is answered; a route lists the ones it can give.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (a source URL that is not rtsp:// or rtsps://)",
    401: "No API key, or an unknown one (when the server requires keys)",
    403: "The key lacks the route's scope, a page of another origin, or a source not allowed",
    404: "Unknown model, job or session",
    410: "The upload waited longer than the server keeps uploads",
    413: "Body or upload too large",
    415: "Not a video, or a container or codec that is not accepted",
    422: "Bad or unknown parameters (named in the message and in details), or an unusable video",
    429: "Queue full, rate limit or quota reached; retry after the Retry-After header's seconds",
    500: "The server failed; the error carries the request id it was logged with",
    503: "No live worker serves the role, or the queue (Redis) is not reachable; retry shortly",
}

# What every /v1 route may answer, whatever it does: keys, rate limit, failures.
COMMON = (401, 403, 429, 500, 503)


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the statuses given and :data:`COMMON`, each with the error shape.

    Args:
        statuses: Statuses the route answers besides the common ones.
        described: ``s404="Unknown or expired job"``: a route's own wording of a status.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *COMMON}):
        text = described.get(f"s{status}", ERROR_DESCRIPTIONS[status])
        out[status] = {"model": ErrorBody, "description": text}
    return out


def answer(
    model: WireModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The model as the response's JSON (its wire form: the fields given, by wire name)."""
    return JSONResponse(model.wire(), status_code=status_code, headers=dict(headers or {}) or None)


def relay(cls: type[WireModel], data: dict[str, Any]) -> JSONResponse:
    """An answer the gateway passes on (a worker's result, the workers' model rows), parsed
    leniently as ``cls``: a newer worker's fields pass. One that breaks the contract (a worker of
    another version, a bug) is logged and sent as it is, since the work it holds is done and a
    500 would lose it."""
    try:
        return answer(cls.model_validate(data))
    except ValidationError as exc:
        log.error("relaying a %s that breaks the contract: %s", cls.__name__, exc)
        return JSONResponse(data)
