"""``vidrec gateway``: the HTTP and WebSocket gateway alone, for deployments.

It needs a Redis server (``VIDREC_REDIS_URL``) shared with ``vidrec worker`` processes; any number
of gateways can run against one Redis. ``vidrec serve`` uses the helpers here to run the same
gateway beside an embedded Redis and its own workers.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from pydantic import ValidationError

from service.settings import Settings, settings_problems

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# Seconds uvicorn gives open requests and WebSockets to finish once asked to stop.
GRACEFUL_SHUTDOWN_S = 10


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run the HTTP/WebSocket gateway (needs VIDREC_REDIS_URL)",
        description=(
            "Run the gateway against the Redis server in VIDREC_REDIS_URL; workers run "
            "separately (`vidrec worker`). Every other setting comes from VIDREC_* variables."
        ),
    )
    add_listen_options(parser)
    parser.set_defaults(handler=run)


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port`` and ``--log-level``, shared with ``vidrec serve``."""
    parser.add_argument("--host", help="address to listen on (default: VIDREC_HOST or 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        help="port to listen on, 0 for any free one (default: VIDREC_PORT or 8000)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=LOG_LEVELS, help="uvicorn's log level (default info)"
    )


def load_settings(**overrides: Any) -> Settings:
    """``Settings()`` from the environment, with the options that were given on top.

    Raises:
        ValueError: a variable or option is invalid (pydantic's message names it).
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ValueError(f"bad settings: {settings_problems(exc)}") from None


def require_redis(settings: Settings, role: str) -> str:
    """The Redis URL the role needs, or a ValueError that says how to give one."""
    if settings.redis_url is None:
        raise ValueError(
            f"the {role} needs a Redis server: set VIDREC_REDIS_URL (redis://host:6379/0 or "
            "unix:///path/to/redis.sock), or run `vidrec serve`, which starts an embedded one"
        )
    return settings.redis_url


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), so the real port is known
    before the server starts and can be printed.

    Raises:
        ValueError: the address cannot be bound (in use, not local...).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class GatewayServer(uvicorn.Server):
    """uvicorn's server with a hook that runs once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


def make_server(
    settings: Settings, log_level: str, on_started: Callable[[], None] | None = None
) -> GatewayServer:
    """uvicorn serving ``create_app(settings)``; run it with ``server.run(sockets=[bind(...)])``."""
    from service.gateway import create_app
    from service.gateway.server import raise_fd_limit, uvicorn_options
    from service.logs import configure_logging

    configure_logging(settings.log_format, log_level.upper())
    raise_fd_limit(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,  # uvicorn's records go through service.logs, in VIDREC_LOG_FORMAT
        access_log=False,  # the gateway logs each request itself, with its request id
        forwarded_allow_ips=settings.trusted_proxies,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **uvicorn_options(settings),  # keep-alive, head deadline, connection cap, h11 limits
    )
    return GatewayServer(config, on_started)


def announce(url: str, role: str) -> None:
    """Prints where the server listens (stdout: scripts read it; a JSON record whose message is
    that line with ``VIDREC_LOG_FORMAT=json``) and logs where its pages are (in the log format, so
    a JSON log stays one object per line)."""
    from service.logs import status_line

    print(status_line(f"service.{role}", f"vidrec {role}: listening on {url}"), flush=True)
    logging.getLogger(f"service.{role}").info(
        "vidrec %s: API docs %s/docs, readiness %s/readyz, metrics %s/metrics", role, url, url, url
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(host=args.host, port=args.port)
    require_redis(settings, "gateway")
    sock = bind(settings.host, settings.port)
    url = base_url(sock)
    server = make_server(settings, args.log_level, lambda: announce(url, "gateway"))
    # uvicorn handles SIGINT/SIGTERM while it runs and raises them again once stopped; these
    # handlers take that second delivery, so a requested stop exits 0 without a traceback.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1
