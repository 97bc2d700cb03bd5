"""Conversions between Redis replies (raw bytes: the clients do not decode) and Python values."""

from __future__ import annotations

import json
import time
from typing import Any


def text(value: bytes | str | None, default: str = "") -> str:
    """A reply value as text."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value


def text_hash(raw: dict[Any, Any]) -> dict[str, str]:
    """An HGETALL reply with keys and values as text."""
    return {text(k): text(v) for k, v in raw.items()}


def as_float(value: str | None, default: float = 0.0) -> float:
    """A stored number, ``default`` when absent or malformed."""
    try:
        return float(value) if value else default
    except ValueError:
        return default


def as_int(value: str | None, default: int = 0) -> int:
    """A stored integer, ``default`` when absent or malformed."""
    try:
        return int(float(value)) if value else default
    except ValueError:
        return default


def as_json(value: str | None, default: Any = None) -> Any:
    """A stored JSON value, ``default`` when absent or malformed."""
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))


def to_field(value: Any) -> str:
    """A hash field value: containers and booleans as JSON, ``None`` empty, others ``str``."""
    if isinstance(value, dict | list | tuple | bool):
        return dumps(value)
    if value is None:
        return ""
    return str(value)


def now() -> str:
    """Unix time in seconds, as stored in the hashes."""
    return repr(time.time())
