"""API keys on the gateway: who is calling, and may they call this route.

``VIDREC_AUTH`` is ``on``, ``off`` or ``auto`` (the default): ``auto`` is off when the gateway
binds a loopback address (the ``make run`` laptop default, which nobody else can reach) and on
for any other bind. With auth on and no key configured the gateway refuses to start.

A key is presented as ``Authorization: Bearer <key>`` (HTTP and WebSocket handshakes) or, from a
browser, which cannot set headers on a WebSocket, as the subprotocol list ``["vidrec",
"bearer.<key>"]``; the server then accepts with the subprotocol ``vidrec``. Only ``/v1/`` routes
(and ``/metrics`` with ``VIDREC_METRICS_ADMIN_ONLY``) need a key: health, readiness, metrics, the
docs and the page stay open. 401 means no key or an unknown one, 403 a key without the scope.

Every request gets a :class:`Principal` (the key, or the client address when auth is off), kept
in :data:`principal_var` for the rate limits and quotas, and recorded as the owner of the sessions
and clip jobs it creates: with auth on, :func:`may_see` shows a key only its own (an admin key
every one).
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.apikeys import SCOPES, ApiKey, match, parse_lines, split_env
from service.gateway.deny import deny
from service.settings import Settings

log = logging.getLogger(__name__)

SUBPROTOCOL = "vidrec"
BEARER_PROTOCOL = "bearer."
RELOAD_CHECK_S = 2.0
# Scope key of the calling key's name, for the access log.
PRINCIPAL_SCOPE_KEY = "vidrec.key_name"
# The scope key app.py's request metrics read for the route label when a middleware answers.
_ROUTE_SCOPE_KEY = "vidrec.route"

# Scopes that open each route (any one of them; admin opens every route). A /v1/ route not
# listed needs a valid key and no particular scope. Keys: "METHOD template" or "template".
ROUTE_SCOPES: dict[str, tuple[str, ...]] = {
    "/v1/clips": ("clips",),
    "/v1/jobs/{job_id}": ("clips",),
    "/v1/streams/live": ("live",),
    "POST /v1/streams": ("rtsp",),
    "GET /v1/streams": ("live", "rtsp"),
    "/v1/streams/{session_id}": ("live", "rtsp"),
    "/v1/streams/{session_id}/events": ("live", "rtsp"),
}
PROTECTED_PREFIX = "/v1/"


def _compile_rules() -> list[tuple[str | None, re.Pattern[str], str, tuple[str, ...]]]:
    """``(method or None, path regex, template, scopes)``, the method-specific rules first."""
    rules = []
    for rule, scopes in ROUTE_SCOPES.items():
        method, _, template = rule.rpartition(" ")
        regex, _format, _convertors = compile_path(template)
        rules.append((method or None, regex, template, scopes))
    return sorted(rules, key=lambda r: r[0] is None)


_RULES = _compile_rules()


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    Attributes:
        who: Identity for rate limits and quotas: ``key:{name}``, or ``addr:{ip}`` with auth off.
        key_name: The key's name, ``None`` with auth off.
        scopes: What it may do (every scope with auth off).
    """

    who: str
    key_name: str | None
    scopes: frozenset[str]


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "vidrec_principal", default=None
)
"""The caller of the request being handled, set by :class:`AuthMiddleware`."""


def caller() -> str | None:
    """The caller's identity (:attr:`Principal.who`), recorded as the owner of the sessions it
    opens and the clip jobs it submits; ``None`` when no access layer ran."""
    principal = principal_var.get()
    return principal.who if principal is not None else None


def may_see(owner: str | None) -> bool:
    """Whether the caller may see (and act on) what ``owner`` opened or submitted.

    The one rule for sessions and clip jobs: with auth off (no key: the principal is the client
    address) every caller may; with auth on the owning key and admin keys may. A record without
    an owner (written before owners were recorded) is seen by admin keys only. No principal means
    no access layer ran (the app is always built with one), as with the rate limits: nothing to
    scope by. Callers answer a record they may not see exactly as an unknown one.
    """
    principal = principal_var.get()
    if principal is None or principal.key_name is None or "admin" in principal.scopes:
        return True
    return owner is not None and owner == principal.who


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): only this machine reaches it."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name other than localhost may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def auth_enabled(settings: Settings) -> bool:
    """Whether the gateway requires keys: ``VIDREC_AUTH``, with ``auto`` decided by the bind."""
    if settings.auth == "auto":
        return not is_loopback(settings.host)
    return settings.auth == "on"


class KeyStore:
    """The configured keys: ``VIDREC_API_KEYS`` plus the file, re-read when the file changes.

    Args:
        env_text: ``VIDREC_API_KEYS``.
        path: ``VIDREC_API_KEYS_FILE``.

    Raises:
        ValueError: The file is missing or a line is malformed (said at start-up).
    """

    def __init__(self, env_text: str | None, path: Path | None) -> None:
        self.path = path
        self._env = parse_lines(split_env(env_text), "VIDREC_API_KEYS") if env_text else []
        self._file: list[ApiKey] = []
        self._mtime: float | None = None
        self._checked = 0.0
        if path is not None:
            self._load_file(path)
        self.keys: Sequence[ApiKey] = self._merge()

    def _load_file(self, path: Path) -> None:
        try:
            stat = path.stat()
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"VIDREC_API_KEYS_FILE: cannot read {path}: {exc.strerror}") from None
        self._file = parse_lines(text.splitlines(), str(path))
        self._mtime = stat.st_mtime

    def _merge(self) -> list[ApiKey]:
        names = {k.name for k in self._env}
        clash = sorted(k.name for k in self._file if k.name in names)
        if clash:
            raise ValueError(f"key name(s) {', '.join(clash)} in both VIDREC_API_KEYS and the file")
        return [*self._env, *self._file]

    def refresh(self) -> None:
        """Re-reads the file if it changed (checked at most every few seconds); a file that no
        longer reads or parses leaves the keys as they were, with an error in the log."""
        now = time.monotonic()
        if self.path is None or now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            if self.path.stat().st_mtime == self._mtime:
                return
            env, file, mtime = self._env, self._file, self._mtime
            self._load_file(self.path)
            try:
                self.keys = self._merge()
            except ValueError:
                self._env, self._file, self._mtime = env, file, mtime
                raise
        except (OSError, ValueError) as exc:
            log.error("API keys file not reloaded, the previous keys stay in force: %s", exc)
            return
        log.info("API keys reloaded from %s: %d key(s)", self.path, len(self.keys))

    def find(self, presented: str) -> ApiKey | None:
        """The key matching ``presented`` (constant-time comparison), or ``None``."""
        self.refresh()
        return match(presented, self.keys)


def key_store(settings: Settings) -> KeyStore | None:
    """The keys the gateway checks, or ``None`` when auth is off.

    Raises:
        ValueError: Auth is on and no key is configured, or the keys cannot be read; the message
            says what to set.
    """
    if not auth_enabled(settings):
        return None
    store = KeyStore(settings.api_keys, settings.api_keys_file)
    if not store.keys:
        why = (
            f"the gateway binds {settings.host}, not a loopback address, and VIDREC_AUTH is auto"
            if settings.auth == "auto"
            else "VIDREC_AUTH is on"
        )
        raise ValueError(
            f"API keys are required ({why}) but none is configured: set VIDREC_API_KEYS_FILE or "
            "VIDREC_API_KEYS (`vidrec keys new --name NAME --scopes clips,live` makes a key), or "
            "set VIDREC_AUTH=off to serve without keys (see docs/SECURITY.md)"
        )
    return store


def presented_key(scope: Scope) -> str | None:
    """The key in the ``Authorization`` header, or in a ``bearer.<key>`` subprotocol."""
    header = Headers(scope=scope).get("authorization")
    if header is not None:
        kind, _, value = header.strip().partition(" ")
        return value.strip() if kind.lower() == "bearer" and value.strip() else ""
    for protocol in scope.get("subprotocols") or ():
        if protocol.startswith(BEARER_PROTOCOL):
            return protocol[len(BEARER_PROTOCOL) :]
    return None


def required_scopes(method: str, path: str) -> tuple[str | None, tuple[str, ...] | None]:
    """The rule's route template and the scopes that open the request (any one of them):
    ``()`` for any valid key, ``None`` for an open route (outside ``/v1/``)."""
    if not path.startswith(PROTECTED_PREFIX):
        return None, None
    for rule_method, regex, template, scopes in _RULES:
        if (rule_method is None or rule_method == method) and regex.match(path):
            return template, scopes
    return None, ()


class AuthMiddleware:
    """Identifies the caller, refuses what its key may not do, picks the ``vidrec`` subprotocol.

    Args:
        app: The next layer.
        store: The keys; ``None`` with auth off (every caller may do everything).
        metrics_admin_only: ``/metrics`` needs the admin scope (auth on only).
    """

    def __init__(self, app: ASGIApp, store: KeyStore | None, metrics_admin_only: bool) -> None:
        self.app = app
        self.store = store
        self.metrics_admin_only = metrics_admin_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        offered = list(scope.get("subprotocols") or ())
        principal = await self._principal(scope, receive, send)
        if principal is None:
            return  # refused
        if scope["type"] == "websocket":
            # The key is not for the routes to see; the vidrec protocol is chosen if offered.
            scope["subprotocols"] = [p for p in offered if not p.startswith(BEARER_PROTOCOL)]
            if SUBPROTOCOL in offered:
                send = _with_subprotocol(send)
        scope[PRINCIPAL_SCOPE_KEY] = principal.key_name  # for the access log: a name, no secret
        token = principal_var.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            principal_var.reset(token)

    async def _principal(self, scope: Scope, receive: Receive, send: Send) -> Principal | None:
        """The caller, or ``None`` after refusing the request."""
        path = str(scope.get("path", ""))
        method = str(scope.get("method", "GET")) if scope["type"] == "http" else "WS"
        template, needed = required_scopes(method, path)
        if template is not None:
            scope[_ROUTE_SCOPE_KEY] = template  # the metrics' route label, should a layer refuse
        if self.store is None:
            client = scope.get("client")
            host = client[0] if client else "unknown"
            return Principal(f"addr:{host}", None, frozenset(SCOPES))
        if needed is None and self.metrics_admin_only and path == "/metrics":
            needed = ("admin",)
            scope[_ROUTE_SCOPE_KEY] = path
        presented = presented_key(scope)
        key = self.store.find(presented) if presented else None
        if needed is None:  # an open route: identify the caller if it can be, refuse nothing
            if key is not None:
                return Principal(f"key:{key.name}", key.name, key.scopes)
            client = scope.get("client")
            return Principal(f"addr:{client[0] if client else 'unknown'}", None, frozenset())
        if key is None:
            if presented is None:
                message = (
                    "an API key is required: send 'Authorization: Bearer <key>' (WebSockets from "
                    "a browser: the subprotocols 'vidrec' and 'bearer.<key>')"
                )
                challenge = 'Bearer realm="vidrec"'
            else:
                message = "the API key is not valid (unknown, revoked or malformed)"
                challenge = 'Bearer realm="vidrec", error="invalid_token"'
            await deny(
                scope, receive, send, 401, "unauthorized", message,
                headers={"WWW-Authenticate": challenge},
            )  # fmt: skip
            return None
        if needed and "admin" not in key.scopes and not key.scopes.intersection(needed):
            await deny(
                scope, receive, send, 403, "forbidden",
                f"the key {key.name!r} lacks the scope this needs: {' or '.join(needed)} "
                f"(it has {', '.join(sorted(key.scopes))})",
                headers={"WWW-Authenticate": 'Bearer realm="vidrec", error="insufficient_scope"'},
                required_scopes=list(needed),
            )  # fmt: skip
            return None
        return Principal(f"key:{key.name}", key.name, key.scopes)


def _with_subprotocol(send: Send) -> Send:
    async def send_choosing(message: Message) -> None:
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": SUBPROTOCOL}
        await send(message)

    return send_choosing
