"""API keys: how they look, how they are stored (hashed), and how a presented key is checked.

A key is ``vrk_`` followed by 43 URL-safe characters (32 random bytes). The server never stores
it: it stores one line per key,

    name:scopes:sha256

with ``name`` a short label (letters, digits, ``.``, ``_``, ``-``; it names the key in logs and
in rate-limit records), ``scopes`` a comma-separated subset of :data:`SCOPES`, and ``sha256`` the
hex SHA-256 of the key. ``vidrec keys new`` prints a fresh key once, with its line. Lines come
from the file in ``VIDREC_API_KEYS_FILE`` (blank lines and ``#`` comments allowed) and from
``VIDREC_API_KEYS`` (lines separated by newlines or ``;``).

A presented key is hashed and compared with every stored hash by :func:`hmac.compare_digest`,
without stopping at the first match, so the time taken says nothing about which key matched.
This module is pure (hashlib and secrets only): the CLI uses it without importing the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = ("clips", "live", "rtsp", "admin")
"""``clips``: upload clips and read jobs; ``live``: stream frames over the WebSocket; ``rtsp``:
register RTSP sources; ``admin``: everything, and ``/metrics`` when it is protected."""

KEY_PREFIX = "vrk_"
# 32 random bytes in URL-safe base64 without padding.
_KEY_RE = re.compile(r"^vrk_[A-Za-z0-9_-]{43}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# What a key looks like inside any text, for redacting logs.
KEY_PATTERN = re.compile(r"vrk_[A-Za-z0-9_-]{8,}")


@dataclass(frozen=True)
class ApiKey:
    """One stored key.

    Attributes:
        name: Its label.
        scopes: What it may do.
        digest: SHA-256 of the key, as 32 bytes.
    """

    name: str
    scopes: frozenset[str]
    digest: bytes

    def line(self) -> str:
        """The line that stores it."""
        return f"{self.name}:{','.join(s for s in SCOPES if s in self.scopes)}:{self.digest.hex()}"


def hash_key(key: str) -> bytes:
    """SHA-256 of a key's UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def check_name(name: str) -> str:
    """``name`` if it is a valid key name.

    Raises:
        ValueError: It is empty, too long, or holds other characters.
    """
    if not _NAME_RE.match(name):
        raise ValueError(
            f"key name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def parse_scopes(text: str) -> frozenset[str]:
    """``clips,live`` as a set of scopes.

    Raises:
        ValueError: No scope, or one that is not in :data:`SCOPES`.
    """
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return scopes


def parse_line(line: str) -> ApiKey:
    """One ``name:scopes:sha256`` line.

    Raises:
        ValueError: It does not have that form; the message never repeats the line, which might
            be a raw key pasted by mistake.
    """
    parts = line.strip().split(":")
    if len(parts) != 3:
        hint = " (that looks like a key itself: store its hash)" if _KEY_RE.match(line) else ""
        raise ValueError(f"expected name:scopes:sha256, got {len(parts)} field(s){hint}")
    name, scopes, digest = parts
    if not _HASH_RE.match(digest.strip().lower()):
        raise ValueError(f"key {name!r}: the hash must be 64 hex digits (sha256)")
    return ApiKey(check_name(name.strip()), parse_scopes(scopes), bytes.fromhex(digest.strip()))


def parse_lines(lines: Iterable[str], where: str) -> list[ApiKey]:
    """Every key in ``lines``, skipping blanks and ``#`` comments.

    Args:
        lines: The lines.
        where: Where they come from, for messages (``VIDREC_API_KEYS``, a file name).

    Raises:
        ValueError: A bad line (with its number) or a name used twice.
    """
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = parse_line(line)
        except ValueError as exc:
            raise ValueError(f"{where}, entry {number}: {exc}") from None
        if key.name in seen:
            raise ValueError(f"{where}, entry {number}: the name {key.name!r} is used twice")
        seen.add(key.name)
        keys.append(key)
    return keys


def split_env(text: str) -> list[str]:
    """The entries of ``VIDREC_API_KEYS``: separated by newlines or ``;``."""
    return re.split(r"[;\n]", text)


def new_key() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def match(presented: str, keys: Iterable[ApiKey]) -> ApiKey | None:
    """The stored key whose hash equals the presented key's hash, or ``None``.

    Every stored hash is compared (constant time each, no early exit), so timing tells nothing.
    """
    digest = hash_key(presented)
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found
