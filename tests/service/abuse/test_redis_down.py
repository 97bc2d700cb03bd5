"""Issue 25, items 1 and 2: what clients get while Redis is down, from a real gateway process on
a private ``redis-server`` that the test kills (SIGKILL, as a crash).

A WebSocket handshake is refused cleanly (an error event, then close code 1013 "try again later",
never an HTTP 500); an open socket gets the error event and 1013 instead of a silent 1000; a
waiting upload whose wait fails still names its job.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from edge_support import GatewayProcess, RedisServer, running_gateway
from gateway_support import LIVE_MODEL, StandInWorker

from service.settings import Settings

pytestmark = pytest.mark.integration

TRY_AGAIN = 1013


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_settings(redis_server: RedisServer) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        key_prefix="edge",
        heartbeat_interval_s=0.2,
        heartbeat_ttl_s=3.0,
        wait_timeout_s=30.0,
    )


@pytest.fixture
def gateway(private_settings: Settings) -> Iterator[GatewayProcess]:
    s = private_settings
    with running_gateway(
        redis_url=s.redis_url,
        key_prefix=s.key_prefix,
        heartbeat_ttl_s=s.heartbeat_ttl_s,
        heartbeat_interval_s=s.heartbeat_interval_s,
        wait_timeout_s=s.wait_timeout_s,
    ) as gw:
        yield gw


async def _refused(url: str) -> tuple[dict[str, object], int, str]:
    """The error event and the close code and reason of a socket the server ends."""
    async with websockets.connect(url, open_timeout=20) as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), 20))
        await asyncio.wait_for(ws.wait_closed(), 20)
        assert ws.close_code is not None
        return event, ws.close_code, ws.close_reason or ""


def test_handshakes_while_redis_is_down_are_refused_cleanly(
    gateway: GatewayProcess, redis_server: RedisServer
) -> None:
    redis_server.stop()
    for path in (f"/v1/streams/live?model={LIVE_MODEL}", "/v1/streams/abc/events"):
        event, code, reason = asyncio.run(_refused(gateway.ws_url + path))
        assert event["type"] == "error" and event["code"] == "redis_unavailable", event
        assert (code, reason) == (TRY_AGAIN, "redis_unavailable")
    with gateway.client() as http:
        answer = http.get("/v1/streams/abc")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "redis_unavailable"
        assert http.get("/healthz").status_code == 200
    assert "Traceback" not in gateway.output, gateway.output
    assert gateway.alive()


def test_an_open_socket_gets_an_error_event_when_redis_goes(
    gateway: GatewayProcess, redis_server: RedisServer, private_settings: Settings
) -> None:
    worker = StandInWorker(settings=private_settings).start()

    async def stream() -> tuple[dict[str, object], int]:
        url = f"{gateway.ws_url}/v1/streams/live?model={LIVE_MODEL}&budget=all"
        async with websockets.connect(url, open_timeout=20) as ws:
            session = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert session["type"] == "session"
            worker.stop()  # it needs Redis too
            redis_server.stop()
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            await asyncio.wait_for(ws.wait_closed(), 20)
            assert ws.close_code is not None
            return event, ws.close_code

    event, code = asyncio.run(stream())
    assert event["type"] == "error" and event["code"] == "redis_unavailable", event
    assert code == TRY_AGAIN
    assert "Traceback" not in gateway.output, gateway.output


def test_a_wait_cut_by_redis_still_names_its_job(
    gateway: GatewayProcess,
    redis_server: RedisServer,
    private_settings: Settings,
    mp4: bytes,
) -> None:
    worker = StandInWorker(settings=private_settings, consume=False).start()
    answers: list[httpx.Response] = []

    def post() -> None:
        with gateway.client(timeout_s=60) as http:
            answers.append(http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")}))

    poster = threading.Thread(target=post)
    poster.start()
    deadline = time.monotonic() + 20
    while worker.redis.xlen(worker.keys.clips) == 0:  # queued: the gateway is waiting now
        assert time.monotonic() < deadline, "the upload was never queued"
        time.sleep(0.05)
    worker.stop()
    redis_server.stop()
    poster.join(timeout=60)
    assert answers, "no answer"
    answer = answers[0]
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "redis_unavailable"
    assert len(error["job_id"]) == 32 and error["status_url"] == f"/v1/jobs/{error['job_id']}"
    assert answer.headers["retry-after"] == "1"
