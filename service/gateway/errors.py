"""One error shape for every refusal: ``{"error": {"code": ..., "message": ...}}``.

Clients branch on ``code`` (stable, snake_case) and show ``message`` (says what was wrong and what
is accepted). FastAPI's own validation errors and Starlette's 404/405 are reshaped the same way, so
a client never has to parse two formats.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.websockets import WebSocketState

from service.ingest import IngestError
from service.logs import request_id_var
from service.queue import QueueError, QueueFullError
from service.wire import ErrorBody, ErrorEvent

log = logging.getLogger(__name__)

# Error messages (and the parts of a validation error's location) are cut to these lengths: some
# quote what the client sent, which must not come back whole.
MAX_MESSAGE_CHARS = 400
MAX_LOC_CHARS = 64
# Validation errors reported per request; a body can hold thousands of bad items.
MAX_VALIDATION_ERRORS = 10

# Codes for Starlette's bare HTTP exceptions (unknown route, wrong method, body limit...).
_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "queue_full",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal the gateway answers with ``status`` and the error shape.

    Attributes:
        status: HTTP status.
        code: Stable machine-readable code.
        message: What was wrong, for people.
        headers: Extra response headers (``Retry-After``).
        extra: Further fields of the error object (``models`` for an unknown model).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = clip(message)
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return error_body(self.code, self.message, **self.extra)

    def response(self) -> JSONResponse:
        """The response to send."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)

    @classmethod
    def from_ingest(cls, exc: IngestError) -> ApiError:
        """Keeps the ingest error's code and HTTP status."""
        return cls(exc.http_status, exc.code, exc.message)

    @classmethod
    def from_queue(cls, exc: QueueError) -> ApiError:
        """Keeps the queue error's code and status; a full queue adds Retry-After."""
        if isinstance(exc, QueueFullError):
            return cls(
                exc.http_status,
                exc.code,
                exc.message,
                headers={"Retry-After": str(exc.retry_after_s)},
                retry_after_s=exc.retry_after_s,
            )
        headers = {"Retry-After": "1"} if exc.http_status == 503 else None
        return cls(exc.http_status, exc.code, exc.message, headers=headers)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {"code", "message", ...extra, "request_id"}}``; the request id is the one
    being handled (``service.gateway.request_id``), when there is one. Built through
    ``service.wire.ErrorBody``, whose ``ErrorDetail`` names the extra fields."""
    detail = {"code": code, "message": clip(message), **extra, **_request_id()}
    return ErrorBody.model_validate({"error": detail}).wire()


def error_event(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The WebSocket form of a refusal: ``{"type": "error", "code", "message", "request_id"}``."""
    fields = {"code": code, "message": clip(message), **extra, **_request_id()}
    return ErrorEvent.model_validate(fields).wire()


def _request_id() -> dict[str, str]:
    rid = request_id_var.get()
    return {"request_id": rid} if rid else {}


def clip(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (default ``MAX_MESSAGE_CHARS``) with a marker, so a
    message that quotes what a client sent never echoes a large input back."""
    limit = MAX_MESSAGE_CHARS if limit is None else limit
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _ingest_statuses() -> dict[str, int]:
    statuses: dict[str, int] = {}
    pending: list[type[IngestError]] = [IngestError]
    while pending:
        cls = pending.pop()
        statuses[cls.code] = cls.http_status
        pending.extend(cls.__subclasses__())
    return statuses


# Every ingest error code with its status, so a job that failed in the worker with an ingest error
# is answered as if the gateway had refused the upload itself.
INGEST_STATUSES: dict[str, int] = _ingest_statuses()
# Codes the worker may use beyond the ingest ones.
JOB_STATUSES: dict[str, int] = {
    **INGEST_STATUSES,
    "unknown_model": 404,
    "upload_expired": 410,
    "dead_letter": 500,
    "internal": 500,
    "inference_failed": 500,
}


def job_error_status(error: Mapping[str, Any]) -> int:
    """The HTTP status for a failed job's ``error`` object.

    An explicit ``http_status`` (or ``status``), an int from 400 to 599, written by the worker
    wins; otherwise the code is looked up (ingest codes keep their own statuses); anything else is
    a server error.
    """
    for name in ("http_status", "status"):
        status = error.get(name)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return status
    return JOB_STATUSES.get(str(error.get("code", "")), 500)


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for err in errors[:MAX_VALIDATION_ERRORS]:
        loc = [clip(str(p), MAX_LOC_CHARS) for p in err.get("loc", ())]
        loc = [p for p in loc if p not in ("body", "query", "path", "form")]
        where = ".".join(loc) or "request"
        if err.get("type") == "extra_forbidden":  # a typo (``topk``) must not pass unnoticed
            parts.append(f"unknown field {where!r}: not a parameter of this route")
            continue
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def _details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [clip(str(p), MAX_LOC_CHARS) for p in err.get("loc", ())],
            "msg": clip(str(err.get("msg", ""))),
        }
        for err in errors[:MAX_VALIDATION_ERRORS]
    ]


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _ingest_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IngestError)
    return ApiError.from_ingest(exc).response()


async def _queue_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueueError)
    return ApiError.from_queue(exc).response()


REDIS_UNAVAILABLE = "redis_unavailable"
REDIS_UNAVAILABLE_MESSAGE = "the queue (Redis) is not reachable; try again shortly"
# RFC 6455 / IANA: "Try Again Later", the close code of a socket refused or ended by an outage.
WS_TRY_AGAIN = 1013


async def close_unavailable(ws: WebSocket) -> None:
    """Ends a WebSocket for a Redis outage: accepted if need be (a browser cannot read a refused
    handshake), an error event, then close code 1013 with the error code as the reason."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if ws.application_state == WebSocketState.CONNECTING:
            await ws.accept()
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.send_json(error_event(REDIS_UNAVAILABLE, REDIS_UNAVAILABLE_MESSAGE))
            await ws.close(WS_TRY_AGAIN, REDIS_UNAVAILABLE)


async def _redis_error(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    method = conn.scope.get("method", "WS")  # a WebSocket has no method
    log.warning("redis error on %s %s: %s", method, conn.url.path, exc)
    if isinstance(conn, WebSocket):
        await close_unavailable(conn)
        return None
    body = error_body(REDIS_UNAVAILABLE, REDIS_UNAVAILABLE_MESSAGE)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    body = error_body("invalid_request", _validation_message(errors), details=_details(errors))
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = clip(str(exc.detail)) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    allow = headers.get("Allow") or headers.get("allow")
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path; every route of
        # the path counts (GET and POST /v1/streams are two routes).
        allow = _allowed_methods(request) or allow
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        if allow:
            headers["Allow"] = allow
    if exc.status_code == 405 and message == "Method Not Allowed" and allow:
        message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
    extra = getattr(exc, "extra", None) or {}  # fields a subclass adds (``max_bytes``)
    return JSONResponse(
        error_body(code, message, **extra), status_code=exc.status_code, headers=headers or None
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """The methods some route fully matches on the request's path, for ``Allow``."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers that give every refusal the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(IngestError, _ingest_error)
    app.add_exception_handler(QueueError, _queue_error)
    # Starlette calls it with the Request, or the WebSocket on WebSocket routes (then: None).
    app.add_exception_handler(redis.RedisError, _redis_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
