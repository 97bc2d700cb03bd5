"""The SDK's exceptions: every refusal carries the server's code, message, status and request id.

``ApiError`` and its subclasses (one per kind of refusal, chosen by HTTP status) come from an
HTTP answer, a failed job or a WebSocket ``error`` event; ``TransportError`` means the server could
not be reached or the connection broke; ``JobTimeoutError`` that a job was not answered in time.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx


class VidrecError(Exception):
    """Base of every error the SDK raises."""


class TransportError(VidrecError):
    """The server could not be reached, or the connection broke before an answer."""


class JobTimeoutError(VidrecError, TimeoutError):
    """A job was not answered within the time given; it may still be answered later.

    Attributes:
        job_id: The job, to look up later with ``Client.job``.
    """

    def __init__(self, job_id: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class ApiError(VidrecError):
    """A refusal by the server.

    Attributes:
        status: The HTTP status (for a WebSocket error event, the status the same refusal has
            over HTTP where one is known, else 0).
        code: The server's stable code (``unknown_model``, ``queue_full``...).
        message: What was wrong, as the server said it.
        request_id: The request's id (``error.request_id`` or the ``X-Request-ID`` header).
        retry_after_s: Seconds the server asked to wait (``Retry-After``), if it did.
        body: The whole error object (extra fields such as ``models`` or ``details``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.body = body or {}

    def __str__(self) -> str:
        text = (f"HTTP {self.status} " if self.status else "") + f"{self.code}: {self.message}"
        if self.retry_after_s is not None:
            text += f" (retry after {self.retry_after_s:g} s)"
        return text


class BadRequestError(ApiError):
    """400 or 422: a parameter, a URL or a file the server cannot use."""


class AuthenticationError(ApiError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(ApiError):
    """403: the key lacks the scope, or the source host is not allowed."""


class NotFoundError(ApiError):
    """404: unknown model, job, session or route."""


class ConflictError(ApiError):
    """409 or 410: the session has ended, or the upload expired before a worker took it."""


class PayloadTooLargeError(ApiError):
    """413: the upload or frame is over the server's limit."""


class UnsupportedMediaError(ApiError):
    """415: not a video (or image), or a container or codec that is not accepted."""


class RateLimitError(ApiError):
    """429: a full queue, a rate limit or a quota; ``retry_after_s`` says when to try again."""


class ServerError(ApiError):
    """5xx: the server or its workers failed."""


class ServiceUnavailableError(ServerError):
    """503: no worker serves the model yet, or Redis does not answer."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}
# Codes of WebSocket error events whose HTTP form is known.
_CODE_STATUS: dict[str, int] = {
    "unknown_model": 404,
    "session_not_found": 404,
    "no_worker": 503,
    "redis_unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "rate_limited": 429,
    "quota_exceeded": 429,
    "invalid_request": 422,
}


def api_error(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    retry_after_s: float | None = None,
    body: dict[str, Any] | None = None,
) -> ApiError:
    """The ``ApiError`` subclass for ``status``."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, code, message, request_id=request_id, retry_after_s=retry_after_s, body=body)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (the delay form; a date is not honoured)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error of a 4xx/5xx answer, whatever its body."""
    code = ""
    message = response.text.strip()[:500] or response.reason_phrase
    request_id = response.headers.get("x-request-id")
    error: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = str(error.get("code", ""))
            message = str(error.get("message", message))
            request_id = str(error.get("request_id") or request_id or "") or None
    return api_error(
        response.status_code,
        code or "http_error",
        message,
        request_id=request_id,
        retry_after_s=retry_after(response),
        body=error,
    )


def error_from_event(event: dict[str, Any]) -> ApiError:
    """The typed error of a WebSocket ``error`` event that refused or ended a stream."""
    code = str(event.get("code", "error"))
    status = _CODE_STATUS.get(code, 0)
    message = str(event.get("message", "the server refused the stream"))
    request_id = event.get("request_id")
    return api_error(
        status, code, message, request_id=str(request_id) if request_id else None, body=event
    )
