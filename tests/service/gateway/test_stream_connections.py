"""Many live WebSockets on one gateway share one event reader: the Redis connections the gateway
holds stay far below the socket count (each socket's blocking read used to hold one)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_support import RedisServer
from gateway_support import LIVE_MODEL, StandInWorker, TestClient
from PIL import Image

from service.gateway import create_app
from service.redis_conn import sync_client
from service.settings import Settings

pytestmark = pytest.mark.integration

SOCKETS = 60


@pytest.fixture
def private_redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test alone, so every client it counts is the gateway's or the
    worker's."""
    server = RedisServer(tmp_path).start()
    try:
        yield server.url
    finally:
        server.stop()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def _until(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(20):
        event: dict[str, Any] = ws.receive_json()
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event")


def _clients(url: str) -> int:
    with sync_client(url) as admin:
        info: Any = admin.info("clients")
        return int(info["connected_clients"]) - 1  # less this one


def test_sixty_live_sockets_hold_a_few_redis_connections(
    private_redis_url: str, key_prefix: str
) -> None:
    settings = Settings(
        redis_url=private_redis_url,
        key_prefix=key_prefix,
        heartbeat_interval_s=0.2,
        heartbeat_ttl_s=2.0,
        wait_timeout_s=10.0,
        quota_live_sessions=0,  # one test client opens them all
        rate_limit_rps=0,
    )
    worker = StandInWorker(settings=settings, capacity=SOCKETS * 2).start()
    try:
        worker_only = _clients(private_redis_url)
        frame = _jpeg()
        with TestClient(create_app(settings)) as client, contextlib.ExitStack() as stack:
            sockets = []
            for _ in range(SOCKETS):
                ws = stack.enter_context(
                    client.websocket_connect(f"/v1/streams/live?model={LIVE_MODEL}")
                )
                first = ws.receive_json()
                assert first["type"] == "session", first
                sockets.append(ws)
            for ws in sockets:  # every relay carries an event, through the shared reader
                ws.send_bytes(frame)
            for ws in sockets:
                assert _until(ws, "labels")["frame_index"] == 0
            # Over two seconds of idle sockets: their relays' waits end and check the state,
            # the leases are renewed.
            peak = 0
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                peak = max(peak, _clients(private_redis_url) - worker_only)
                time.sleep(0.1)
            for ws in sockets:  # the relays still carry events
                ws.send_bytes(frame)
            for ws in sockets:
                assert _until(ws, "labels")["frame_index"] == 1
            gateway = _clients(private_redis_url) - worker_only
    finally:
        worker.stop()
    print(f"{SOCKETS} live sockets: the gateway holds {gateway} Redis connections (peak {peak})")
    # Each socket's blocking read held one before the fan-out: 64 connections for 60 sockets
    # (160 for 150); with it, about 5 whatever the count (the shared read, and short calls).
    assert max(peak, gateway) <= SOCKETS // 4, (peak, gateway)
