"""Where the server is, the API key, and how requests are retried."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "VIDREC_URL"
API_KEY_ENV = "VIDREC_API_KEY"


def resolve_url(url: str | None) -> str:
    """``url``, else ``$VIDREC_URL``, else ``http://127.0.0.1:8000``; checked and without a
    trailing slash.

    Raises:
        ValueError: Not an ``http://`` or ``https://`` URL.
    """
    base = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the server URL must be http:// or https://, got {base!r}")
    return base


def resolve_api_key(api_key: str | None) -> str | None:
    """``api_key``, else ``$VIDREC_API_KEY``, else none."""
    return api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when there is a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def ws_url(base: str, path: str, query: dict[str, str] | None = None) -> str:
    """``ws://`` (or ``wss://``) URL of ``path`` on the server at ``base``."""
    parts = urlsplit(base.rstrip("/"))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the server URL must be http:// or https://, got {base!r}")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + path, urlencode(query or {}), ""))


# Answers worth another try: the server said "later" (429, 503), or a proxy in front of it
# failed (502, 504; only for requests that may be repeated).
RETRY_ALWAYS = frozenset({429, 503})
RETRY_IDEMPOTENT = frozenset({502, 504})
# Errors raised before a request reached the server: repeating it cannot do anything twice.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff that honour ``Retry-After``.

    Attributes:
        max_retries: Further attempts after the first (0: none).
        backoff_s: First delay when the server gives none; doubled each attempt, with jitter.
        max_delay_s: Longest single wait, ``Retry-After`` included.
    """

    max_retries: int = 3
    backoff_s: float = 0.5
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry settings must not be negative")

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_delay_s)
        # Jitter spreads clients that failed together, so they do not all come back at once.
        base = self.backoff_s * 2**attempt
        return min(base * random.uniform(0.75, 1.25), self.max_delay_s)

    def should_retry(self, status: int, idempotent: bool) -> bool:
        """Whether an answer with ``status`` may be tried again. A request that is not
        idempotent only on 429 and 503, which the server answers before it accepts anything."""
        return status in RETRY_ALWAYS or (idempotent and status in RETRY_IDEMPOTENT)
