"""Issue 25, item 4: slow bodies are cut off (408), idle and half-open connections are closed, the
connection count is capped, and ``/healthz`` answers through a flood of idle connections.

A real gateway process (``vidrec gateway``, so the uvicorn options it sets are the ones tested)
with short bounds, driven by plain sockets on loopback.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from edge_support import GatewayProcess, running_gateway

from service.settings import Settings

pytestmark = pytest.mark.integration

HEAD_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0
BODY_IDLE_S = 1.5
FLOOD = 300


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    with running_gateway(
        redis_url=settings.redis_url,
        key_prefix=settings.key_prefix,
        http_head_timeout_s=HEAD_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        body_idle_timeout_s=BODY_IDLE_S,
        http_max_connections=FLOOD + 100,
    ) as gw:
        yield gw


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _upload_head(length: int) -> bytes:
    return (
        b"POST /v1/clips HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=XYZ\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    )


def test_a_one_byte_per_second_upload_is_cut_off_with_408(gateway: GatewayProcess) -> None:
    with _connect(gateway.port) as sock:
        sock.sendall(_upload_head(100_000))
        start = time.monotonic()
        sock.settimeout(0.5)
        answer = b""
        reset = False
        while time.monotonic() - start < 30:
            try:
                sock.sendall(b"\0")
                if chunk := sock.recv(65536):
                    answer += chunk
                    continue
                break  # closed by the server
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                # A byte sent after the server's answer and close draws a reset, which can
                # overtake the answer on the client's side: the connection was still cut.
                reset = True
                break
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408") or (reset and not answer), answer[:300]
    assert b'"code":"request_timeout"' in answer or reset
    assert BODY_TIMEOUT_S - 0.5 < took < BODY_TIMEOUT_S + 15


def test_a_body_that_stops_is_cut_off_after_the_idle_bound(gateway: GatewayProcess) -> None:
    with _connect(gateway.port) as sock:
        sock.sendall(_upload_head(100_000) + b"\0" * 1000)
        start = time.monotonic()
        answer = _read_all(sock)
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert took < BODY_TIMEOUT_S + 10


def test_idle_and_slow_head_connections_are_closed_and_healthz_answers(
    gateway: GatewayProcess,
) -> None:
    baseline = gateway.open_fds()
    flood = [_connect(gateway.port) for _ in range(FLOOD)]
    try:
        for sock in flood[: FLOOD // 3]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # a head that never ends
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            for _ in range(5):
                assert http.get("/healthz").status_code == 200
        assert gateway.open_fds() >= baseline + FLOOD // 2  # the flood did reach the gateway
        for sock in flood:
            sock.settimeout(HEAD_TIMEOUT_S + 20)
            assert _read_all(sock) == b""  # closed by the server, without an answer
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 10
    while gateway.open_fds() > baseline + 10:
        assert time.monotonic() < deadline, (gateway.open_fds(), baseline)
        time.sleep(0.1)
    assert gateway.alive()


def test_connections_past_the_cap_are_refused(settings: Settings) -> None:
    cap = 20
    with running_gateway(
        redis_url=settings.redis_url, key_prefix=settings.key_prefix, http_max_connections=cap
    ) as gateway:
        held = [_connect(gateway.port) for _ in range(cap + 30)]
        try:
            time.sleep(0.5)
            closed = 0
            for sock in held:
                sock.settimeout(0.2)
                try:
                    closed += sock.recv(1) == b""
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    closed += 1
            assert closed >= 30 - 2, closed  # the ones past the cap (a little slack for timing)
            assert gateway.open_fds() < 200
        finally:
            for sock in held:
                sock.close()
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
        assert "refusing connections" in gateway.output
