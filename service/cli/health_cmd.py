"""``vidrec health``: exits 0 when the vidrec process beside it is healthy; for container probes.

The image's ``HEALTHCHECK`` and the Kubernetes exec probes of workers run it inside the container
of the process they check. What healthy means depends on the role:

- gateway: ``GET /healthz`` on ``127.0.0.1:VIDREC_PORT`` answers 200 (``--ready``: ``/readyz``);
- worker: a worker of this host (its heartbeat's ``host`` is this host name, which in a container
  or a pod is the container's own) is registered in Redis with its models loaded. The heartbeat
  lapses within ``VIDREC_HEARTBEAT_TTL_S`` of the worker dying, hanging or losing Redis.

``--role auto`` (the default) takes the role from the command line of the container's main
process (``vidrec gateway``, ``vidrec worker``; ``vidrec serve`` counts as a gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from service.cli.gateway_cmd import load_settings, require_redis
from service.settings import Settings

ROLES = ("auto", "gateway", "worker")
# The main process of a container; with an init process (``init: true``) vidrec is its child.
_MAIN_PIDS = (1, 2)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health",
        help="probe the gateway or worker of this container (exit 0: healthy)",
        description=(
            "Exit 0 when the vidrec process of this container is healthy, 1 otherwise (the "
            "reason goes to stderr). A gateway must answer /healthz (--ready: /readyz) on "
            "127.0.0.1:VIDREC_PORT; a worker must heartbeat in VIDREC_REDIS_URL with its "
            "models loaded."
        ),
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="auto",
        help="what to probe (default: read from the container's main process)",
    )
    parser.add_argument(
        "--ready", action="store_true", help="gateway: probe /readyz instead of /healthz"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.set_defaults(handler=run)


def main_role(proc: Path = Path("/proc")) -> str | None:
    """``gateway`` or ``worker`` from the command line of the container's main process."""
    for pid in _MAIN_PIDS:
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = {Path(arg.decode(errors="replace")).name for arg in argv}
        if "worker" in words:
            return "worker"
        if "gateway" in words or "serve" in words:
            return "gateway"
    return None


def probe_gateway(settings: Settings, path: str, timeout_s: float) -> str | None:
    """None when ``path`` answers 200, else why not."""
    url = f"http://127.0.0.1:{settings.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read(300).decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def probe_worker(settings: Settings, timeout_s: float) -> str | None:
    """None when a worker of this host heartbeats with models loaded, else why not."""
    from service.keys import Keys
    from service.queue import WorkerDirectory
    from service.redis_conn import async_client

    url = require_redis(settings, "worker")
    host = socket.gethostname()

    async def mine() -> list[str]:
        client = async_client(url, connect_timeout_s=timeout_s)
        try:
            workers = await WorkerDirectory(client, Keys.from_settings(settings)).live()
        finally:
            await client.aclose()
        return [w.worker_id for w in workers if w.host == host and (w.models or w.live_models)]

    try:
        found = asyncio.run(asyncio.wait_for(mine(), timeout_s))
    except (OSError, TimeoutError, ConnectionError) as exc:
        return f"redis: {exc or type(exc).__name__}"
    except Exception as exc:  # redis-py's errors: the probe reports them, it does not crash
        return f"redis: {type(exc).__name__}: {exc}"
    return None if found else f"no worker of host {host} heartbeats with its models loaded"


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    role = args.role if args.role != "auto" else main_role()
    if role is None:
        print("vidrec health: cannot tell the role; pass --role", file=sys.stderr)
        return 1
    if role == "worker":
        problem = probe_worker(settings, args.timeout)
    else:
        problem = probe_gateway(settings, "/readyz" if args.ready else "/healthz", args.timeout)
    if problem is not None:
        print(f"vidrec health ({role}): {problem}", file=sys.stderr)
        return 1
    return 0
