"""Typed queue errors, and the error answers a job can end with.

Like :class:`service.ingest.IngestError`, each error class has a stable ``code`` and the HTTP status
a gateway answers with, so routes map them with one ``except QueueError``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class QueueError(Exception):
    """Base class: the queue refused a request.

    Attributes:
        code: Stable identifier for clients and metrics.
        http_status: The status a gateway should answer with.
        message: A sentence for the client that says what was wrong.
    """

    code: ClassVar[str] = "queue_error"
    http_status: ClassVar[int] = 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON body a gateway can send: ``{"error": code, "message": ...}``."""
        return {"error": self.code, "message": self.message}


class QueueFullError(QueueError):
    """The clip queue holds ``queue_max_jobs`` outstanding jobs; answer 429 with Retry-After.

    Attributes:
        retry_after_s: Seconds the client should wait before retrying.
    """

    code = "queue_full"
    http_status = 429

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message or f"the clip queue is full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON body, with ``retry_after_s``."""
        return {**super().to_dict(), "retry_after_s": self.retry_after_s}


class NoWorkerError(QueueError):
    """No live worker can take a session (none serves the model live, or all are full)."""

    code = "no_worker"
    http_status = 503


class JobNotFoundError(QueueError):
    """No such clip job (never submitted, or its record expired)."""

    code = "job_not_found"
    http_status = 404


class SessionNotFoundError(QueueError):
    """No such session (never opened, or its record expired)."""

    code = "session_not_found"
    http_status = 404


class SessionClosedError(QueueError):
    """The session is closed or failed and takes no more frames or messages."""

    code = "session_closed"
    http_status = 409


# Error answers stored as a failed job's result: ``{"error": {"code", "message", "http_status"}}``.

UPLOAD_EXPIRED = "upload_expired"
DEAD_LETTER = "dead_letter"


def job_error(code: str, message: str, http_status: int = 500, **extra: Any) -> dict[str, Any]:
    """The ``error`` part of a failed job's result."""
    return {"code": code, "message": message, "http_status": http_status, **extra}


def normalize_job_error(error: dict[str, Any]) -> dict[str, Any]:
    """An error dict with ``code`` and ``message``, whatever its shape.

    Accepts :func:`job_error` dicts and ``IngestError.to_dict()`` / ``QueueError.to_dict()``
    bodies (``{"error": code, "message": ...}``), so a worker can pass either.
    """
    out = dict(error)
    if "code" not in out:
        code = out.pop("error", None)
        out["code"] = code if isinstance(code, str) else "error"
    out.setdefault("message", "the job failed")
    return out
