"""Fixtures of the worker tests: tiny bundles written once, a sync client, one torch thread."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# --import-mode=importlib keeps test directories off sys.path; worker_support is imported by name.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from worker_support import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402

from service.redis_conn import sync_client  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every test here runs tiny models in-process (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny clip and live bundles (random weights, depth 2, 112 px, 8 frames)."""
    return write_bundles(tmp_path_factory.mktemp("bundles"), (CLIP_MODEL, LIVE_MODEL))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client on the test server, for looking at what the worker wrote."""
    r = sync_client(redis_url)
    try:
        yield r
    finally:
        r.close()
