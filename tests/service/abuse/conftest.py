"""Fixtures of the edge (abuse) tests: stand-in workers on the test's Redis, settings for a
gateway process, and a normal clip.

The stand-in worker is the gateway tests' (real queue API, no model); its helper module is put on
``sys.path`` here, as the gateway tests' conftest does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
for _helpers in (_HERE, _HERE.parent / "gateway"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from gateway_support import StandInWorker, encode_mp4  # noqa: E402

from service.settings import Settings  # noqa: E402


@pytest.fixture
def settings(redis_url: str, key_prefix: str) -> Settings:
    """Settings on this test's prefix (the stand-in worker's side of them)."""
    return Settings(
        redis_url=redis_url, key_prefix=key_prefix, heartbeat_interval_s=0.2, heartbeat_ttl_s=3.0
    )


@pytest.fixture
def make_worker(settings: Settings) -> Iterator[Callable[..., StandInWorker]]:
    """Starts stand-in workers; stops them (and checks they raised nothing) after the test."""
    started: list[StandInWorker] = []

    def make(**kwargs: Any) -> StandInWorker:
        worker = StandInWorker(settings=kwargs.pop("settings", settings), **kwargs).start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
    for worker in started:
        assert not worker.errors, worker.errors


@pytest.fixture(scope="session")
def mp4() -> bytes:
    """A small valid H.264 MP4."""
    return encode_mp4()
