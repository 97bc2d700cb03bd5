"""Fixtures of the edge (abuse) tests: stand-in workers on the test's Redis, settings for a
gateway process, and a normal clip.

The stand-in worker is the gateway tests' (real queue API, no model); its helper module is put on
``sys.path`` here, as the gateway tests' conftest does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _helpers in (_HERE, _HERE.parent / "gateway"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

# make_worker and mp4 are the gateway tests' fixtures; imported here so pytest finds them.
from gateway_support import make_worker, mp4  # noqa: E402, F401

from service.settings import Settings  # noqa: E402


@pytest.fixture
def settings(redis_url: str, key_prefix: str) -> Settings:
    """Settings on this test's prefix (the stand-in worker's side of them)."""
    return Settings(
        redis_url=redis_url, key_prefix=key_prefix, heartbeat_interval_s=0.2, heartbeat_ttl_s=3.0
    )
