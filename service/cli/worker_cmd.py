"""``vidrec worker``: one worker process (models, clip jobs, live sessions), for deployments.

Run one per GPU against the Redis server in ``VIDREC_REDIS_URL``; SIGTERM makes it drain its
in-flight work and leave. ``vidrec serve`` starts the same process as ``python -m service.worker``.
"""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.gateway_cmd import load_settings, require_redis


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a worker process (needs VIDREC_REDIS_URL)",
        description=(
            "Run a worker against the Redis server in VIDREC_REDIS_URL: it loads the model "
            "bundles once, answers clip jobs and runs live sessions until SIGTERM, then drains. "
            "Every setting comes from VIDREC_* variables (see docs/OPERATIONS.md)."
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_redis(settings, "worker")
    from service.worker import run_worker  # torch and the models load only for this role

    status: int = run_worker(settings)
    return status
