"""What a gateway process holds: settings, one asyncio Redis client, the queue objects (among them
the event fan-out, the one task that reads every relayed session's events), metrics.

The gateway is stateless apart from this: every fact about jobs, sessions and workers lives in
Redis, so any number of replicas can run behind one load balancer.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio
from starlette.requests import HTTPConnection

from service.gateway.ratelimit import Limits
from service.keys import Keys
from service.metrics import GatewayMetrics
from service.queue import ClipJobs, EventFanout, EventReader, SessionDirectory, WorkerDirectory
from service.settings import Settings


@dataclass
class Gateway:
    """The objects the routes use, built once per app in its lifespan."""

    settings: Settings
    keys: Keys
    redis: redis.asyncio.Redis
    jobs: ClipJobs
    sessions: SessionDirectory
    events: EventReader
    fanout: EventFanout  # the one blocking reader of the events its sockets relay
    workers: WorkerDirectory
    metrics: GatewayMetrics
    limits: Limits


def get_gateway(conn: HTTPConnection) -> Gateway:
    """The app's :class:`Gateway`; a FastAPI dependency for HTTP routes and WebSockets alike."""
    gateway: Gateway = conn.app.state.gateway
    return gateway
