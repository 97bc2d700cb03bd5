"""Issue 25, item 3: every route that takes a body bounds it (413, early) and no refusal echoes
the input back. Against a real gateway process on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import websockets
from edge_support import GatewayProcess, running_gateway
from gateway_support import LIVE_MODEL, StandInWorker
from websockets.exceptions import ConnectionClosed

from service.settings import Settings

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024  # the default max_body_bytes


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    s = settings
    with running_gateway(
        redis_url=s.redis_url,
        key_prefix=s.key_prefix,
        heartbeat_ttl_s=s.heartbeat_ttl_s,
        heartbeat_interval_s=s.heartbeat_interval_s,
    ) as gw:
        yield gw


def _raw(port: int, head: bytes, body: bytes = b"", pause_s: float = 0.0) -> bytes:
    """Sends a request head (and body) on a plain socket; the whole answer, until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        if body:
            time.sleep(pause_s)
            # Refused before all of it was read: the answer is what matters.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(body)
        chunks = []
        # A server that closes with the rest of the body unread resets the connection (TCP
        # does that); the answer sent before the reset is what a client gets.
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_a_declared_huge_json_body_is_refused_before_it_is_sent(gateway: GatewayProcess) -> None:
    head = (
        b"POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 524288000\r\n\r\n"
    )
    start = time.monotonic()
    answer = _raw(gateway.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"too_large"' in answer and str(MAX_BODY).encode() in answer
    assert time.monotonic() - start < 10  # answered without waiting for a byte of the body


def test_a_chunked_json_body_is_cut_off_at_the_limit(gateway: GatewayProcess) -> None:
    data = b'{"source": "' + b"A" * (4 * 1024 * 1024)  # 4 MiB offered, no length declared
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    head = (
        b"POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = _raw(gateway.port, head, chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert gateway.alive()


def test_refusals_do_not_echo_the_input(gateway: GatewayProcess) -> None:
    marker = "Z" * 50_000
    with gateway.client() as http:
        for body in (
            {"source": f"rtsp://8.8.8.8/{marker}"},
            {"source": "rtsp://8.8.8.8/x", "model": marker},
            {"source": "rtsp://8.8.8.8/x", "budget": marker},
            {"source": "rtsp://8.8.8.8/x", "budget": {marker: 1}},
            {"source": marker},
        ):
            answer = http.post("/v1/streams", json=body)
            assert 400 <= answer.status_code < 500, answer.text[:300]
            error = answer.json()["error"]
            assert len(answer.content) < 4096, (body.keys(), answer.text[:300])
            assert "Z" * 500 not in answer.text
            assert error["code"] and error["message"]


def test_an_oversized_upload_is_refused_and_the_gateway_answers_on(
    gateway: GatewayProcess,
) -> None:
    with gateway.client() as http:
        big = b"\0" * (64 * 1024 * 1024 + 128 * 1024)  # over max_upload_bytes and the framing
        answer = http.post("/v1/clips", files={"file": ("a.mp4", big, "video/mp4")})
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "too_large"
    with gateway.client() as http:
        assert http.get("/healthz").status_code == 200


def test_an_oversized_request_head_is_refused(gateway: GatewayProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 64 * 1024 + b"\r\n\r\n"
    answer = _raw(gateway.port, head)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]  # over VIDREC_HTTP_MAX_HEAD_BYTES
    assert b"head_too_large" in answer
    assert gateway.alive()


def test_an_oversized_websocket_message_closes_the_socket(
    gateway: GatewayProcess, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()

    async def send_big() -> int | None:
        url = f"{gateway.ws_url}/v1/streams/live?model={LIVE_MODEL}"
        async with websockets.connect(url, open_timeout=20, max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "session"
            with contextlib.suppress(ConnectionClosed):
                await ws.send(b"\xff" * (3 * 1024 * 1024))  # over frame_max_bytes + 64 KiB
                while True:
                    await asyncio.wait_for(ws.recv(), 20)
            return ws.close_code

    assert asyncio.run(send_big()) == 1009  # message too big
    with gateway.client() as http:
        assert http.get("/healthz").status_code == 200
