"""Issue 25, item 6: hostile source URLs are refused, whatever form the address takes, public
hosts are reached on RTSP ports only, and failed connections are told alike whatever the port.

The policy is checked through a real gateway process (``POST /v1/streams``) and directly; the
connection failures through a real RTSP reader (FFmpeg) against real sockets on loopback.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from edge_support import GatewayProcess, free_port, running_gateway

from service.ingest import check_source_url
from service.ingest.errors import SourceUnreachableError, SourceURLForbiddenError
from service.ingest.rtsp import RtspReader, StreamState
from service.ingest.settings import RtspSettings, UrlPolicy
from service.settings import Settings

pytestmark = pytest.mark.integration

HOSTILE = [
    "rtsp://[::127.0.0.1]/x",  # IPv4-compatible IPv6 (the case)
    "rtsp://[::169.254.169.254]/x",
    "rtsp://[::8.8.8.8]/x",  # deprecated whatever it carries
    "rtsp://[::ffff:127.0.0.1]/x",  # IPv4-mapped
    "rtsp://[::ffff:10.0.0.1]/x",
    "rtsp://[::ffff:0:127.0.0.1]/x",  # IPv4-translated
    "rtsp://[64:ff9b::127.0.0.1]/x",  # NAT64
    "rtsp://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of the cloud metadata address
    "rtsp://[64:ff9b:1::7f00:1]/x",  # local-use NAT64
    "rtsp://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
    "rtsp://[2002:a9fe:a9fe::1]/x",  # 6to4 of 169.254.169.254
    "rtsp://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
    "rtsp://[fec0::1]/x",  # site-local, deprecated
    "rtsp://[3ffe::1]/x",  # 6bone, returned
    "rtsp://[::]/x",
    "rtsp://[::1]/x",
    "rtsp://[ff02::1]/x",
    "rtsp://[fe80::1]/x",
    "rtsp://[fc00::1]/x",
    "rtsp://0.0.0.0/x",
    "rtsp://127.0.0.1/x",
    "rtsp://10.1.2.3/x",
    "rtsp://100.64.0.1/x",
    "rtsp://169.254.169.254/x",
    "rtsp://192.0.0.1/x",
    "rtsp://192.0.2.1/x",
    "rtsp://198.18.0.1/x",
    "rtsp://224.0.0.1/x",
    "rtsp://240.0.0.1/x",
    "rtsp://255.255.255.255/x",
    "rtsp://8.8.8.8:22/x",  # a public host on a port that is not RTSP's
    "rtsp://8.8.8.8:6379/x",
    "rtsps://[::ffff:8.8.8.8]:443/x",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_addresses_are_refused(url: str) -> None:
    with pytest.raises(SourceURLForbiddenError):
        check_source_url(url, Settings().url_policy())


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://8.8.8.8/x",
        "rtsp://8.8.8.8:8554/x",
        "rtsps://8.8.8.8/x",  # 322
        "rtsp://[::ffff:8.8.8.8]/x",  # judged by the IPv4 it carries
        "rtsp://[2002:808:808::1]:554/x",  # 6to4 of 8.8.8.8
        "rtsp://[2606:4700::1111]/x",
    ],
)
def test_public_rtsp_addresses_pass(url: str) -> None:
    assert check_source_url(url, Settings().url_policy()).addresses


def test_ports_are_a_setting_and_opened_networks_keep_every_port() -> None:
    assert check_source_url("rtsp://8.8.8.8:9000/x", Settings(source_ports=[9000]).url_policy())
    assert check_source_url("rtsp://8.8.8.8:22/x", Settings(source_ports=[]).url_policy())
    opened = Settings(allow_private_sources=True).url_policy()
    assert check_source_url("rtsp://127.0.0.1:6379/x", opened).port == 6379
    with pytest.raises(SourceURLForbiddenError, match="port 22"):
        check_source_url("rtsp://8.8.8.8:22/x", opened)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    with running_gateway(redis_url=settings.redis_url, key_prefix=settings.key_prefix) as gw:
        yield gw


def test_the_gateway_refuses_hostile_sources_with_403(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        for url in HOSTILE:
            answer = http.post("/v1/streams", json={"source": url})
            assert answer.status_code == 403, (url, answer.text)
            assert answer.json()["error"]["code"] == "source_url_forbidden"
        for url in ("file:///etc/passwd", "http://8.8.8.8/x", "rtsp://", "rtsp://[::1"):
            answer = http.post("/v1/streams", json={"source": url})
            assert answer.status_code == 400, (url, answer.text)
            assert answer.json()["error"]["code"] == "invalid_source_url"
    assert gateway.alive()


class _Listener:
    """A TCP port on loopback that accepts and then says nothing, or answers garbage."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.reply = reply
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            if self.reply is not None:
                conn.sendall(self.reply)
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def _failure(port: int) -> tuple[str, str]:
    settings = RtspSettings(
        open_timeout_s=1.0, read_timeout_s=1.0, max_attempts=1, backoff_initial_s=0.05
    )
    reader = RtspReader(
        f"rtsp://127.0.0.1:{port}/cam", settings, UrlPolicy(allow_networks=("127.0.0.1/32",))
    )
    reader.start()
    try:
        assert reader.wait_for(StreamState.FAILED, timeout=30)
        error = reader.status().last_error
    finally:
        reader.stop()
    assert error is not None
    return error.code, re.sub(rf":{port}\b", ":PORT", error.message)


def test_connection_failures_do_not_tell_ports_apart() -> None:
    silent = _Listener(None)
    talker = _Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        started = time.monotonic()
        refused = _failure(free_port())  # nobody listens
        no_answer = _failure(silent.port)
        not_rtsp = _failure(talker.port)
        assert time.monotonic() - started < 60
    finally:
        silent.close()
        talker.close()
    assert refused == no_answer == not_rtsp, (refused, no_answer, not_rtsp)
    assert refused[0] == SourceUnreachableError.code
