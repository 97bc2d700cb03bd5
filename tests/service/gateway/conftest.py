"""Gateway fixtures: settings on a test prefix, the app under TestClient, and stand-in workers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib keeps test directories off sys.path; the helper module beside this file
# is imported by name from the tests.
_HERE = str(Path(__file__).resolve().parent)
# ...and the edge tests' one (its private Redis server), beside it.
for _helpers in (_HERE, str(Path(_HERE).parent / "abuse")):
    if _helpers not in sys.path:
        sys.path.insert(0, _helpers)

# make_worker and mp4 are fixtures shared with the abuse tests; imported here so pytest finds them.
from gateway_support import TestClient, make_worker, mp4  # noqa: E402, F401

from service.gateway import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402


@pytest.fixture
def settings(redis_url: str, key_prefix: str) -> Settings:
    """Settings on this test's prefix, with short heartbeats and waits."""
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        heartbeat_interval_s=0.2,
        heartbeat_ttl_s=2.0,
        wait_timeout_s=10.0,
        max_upload_bytes=256 * 1024,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app under TestClient, its lifespan run (Redis connected)."""
    with TestClient(create_app(settings)) as c:
        yield c
