"""The abuse suite together: slow uploads, oversized bodies, hostile URLs, decode bombs and a
WebSocket handshake flood against one real gateway process, while a normal client uploads a
normal clip. Every abusive request ends in a clear 4xx or a closed connection, within bounds;
the normal clip is answered and ``/healthz`` stays up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import websockets
from edge_support import GatewayProcess, decode_bomb, running_gateway
from gateway_support import LIVE_MODEL, StandInWorker
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.settings import Settings

pytestmark = pytest.mark.integration

HANDSHAKES = 150
SLOW_UPLOADS = 4


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    s = settings
    with running_gateway(
        redis_url=s.redis_url,
        key_prefix=s.key_prefix,
        heartbeat_ttl_s=s.heartbeat_ttl_s,
        heartbeat_interval_s=s.heartbeat_interval_s,
        body_timeout_s=4,
        body_idle_timeout_s=2,
        http_head_timeout_s=3,
        # Every client here is 127.0.0.1, so the per-address rate limit would refuse the normal
        # client with the abusers (its own tests cover it); the bounds under test are the edge's.
        rate_limit_rps=0,
    ) as gw:
        yield gw


def _slow_upload(port: int, outcomes: list[str]) -> None:
    """Sends a multipart upload one byte every 0.25 s; records how it ended."""
    head = (
        b"POST /v1/clips HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        b"Content-Length: 100000\r\n\r\n--B\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.25)
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"x")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                outcomes.append("reset")
                return
            if not chunk:
                break
            answer += chunk
        outcomes.append(answer[:12].decode(errors="replace") if answer else "closed")


def _handshake_flood(url: str) -> list[str]:
    """Opens ``HANDSHAKES`` live sockets at once; how each ended."""

    async def one() -> str:
        try:
            async with websockets.connect(url, open_timeout=30, close_timeout=5) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if first.get("type") == "error":
                    await asyncio.wait_for(ws.wait_closed(), 30)
                    return f"closed {ws.close_code} {first.get('code')}"
                return "accepted"
        except InvalidStatus as exc:
            return f"http {exc.response.status_code}"
        except ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"

    async def all_of_them() -> list[str]:
        return list(await asyncio.gather(*(one() for _ in range(HANDSHAKES))))

    return asyncio.run(all_of_them())


def test_abuse_alongside_a_normal_client(
    gateway: GatewayProcess, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    results: dict[str, list[str]] = {"slow": [], "big": [], "url": [], "bomb": [], "ws": []}
    bomb = decode_bomb()

    def big_bodies() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            for _ in range(5):
                answer = http.post(
                    "/v1/streams",
                    content=b"{" * (1 << 20),
                    headers={"Content-Type": "application/json"},
                )
                results["big"].append(str(answer.status_code))

    def hostile_urls() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            for url in ("rtsp://[::127.0.0.1]/x", "rtsp://169.254.169.254/", "file:///etc/x"):
                for _ in range(5):
                    answer = http.post("/v1/streams", json={"source": url})
                    results["url"].append(str(answer.status_code))

    def bombs() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            for _ in range(3):
                files = {"file": ("b.mp4", bomb, "video/mp4")}
                answer = http.post("/v1/clips", files=files)
                results["bomb"].append(str(answer.status_code))

    ws_url = f"{gateway.ws_url}/v1/streams/live?model={LIVE_MODEL}"
    threads = [
        *(
            threading.Thread(target=_slow_upload, args=(gateway.port, results["slow"]))
            for _ in range(SLOW_UPLOADS)
        ),
        threading.Thread(target=big_bodies),
        threading.Thread(target=hostile_urls),
        threading.Thread(target=bombs),
        threading.Thread(target=lambda: results["ws"].extend(_handshake_flood(ws_url))),
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # the abuse is under way
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            start = time.monotonic()
            answer = http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
            assert answer.status_code == 200, answer.text + gateway.output[-3000:]
            assert answer.json()["labels"][0]["label"] == "waving"
            assert http.get("/healthz").status_code == 200
            assert time.monotonic() - start < 45
    finally:
        for thread in threads:
            thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "an abusive client never finished"

    assert len(results["slow"]) == SLOW_UPLOADS
    assert all(r.startswith("HTTP/1.1 408") or r == "reset" for r in results["slow"]), results
    assert results["big"] == ["413"] * 5
    assert set(results["url"]) <= {"400", "403"} and len(results["url"]) == 15
    assert results["bomb"] == ["422"] * 3, gateway.output[-4000:]
    assert len(results["ws"]) == HANDSHAKES
    for outcome in results["ws"]:  # accepted, or refused with a 4xx or a policy/try-later close
        kind, _, rest = outcome.partition(" ")
        assert (
            kind == "accepted"
            or (kind == "http" and rest.startswith("4"))
            or (kind == "closed" and rest.split()[0] in ("1008", "1013"))
        ), results["ws"]
    assert gateway.alive()
    assert "Traceback" not in gateway.output, gateway.output[-3000:]
