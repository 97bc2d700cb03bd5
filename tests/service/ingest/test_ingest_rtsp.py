"""The RTSP reader against a real GStreamer RTSP server started by the tests, on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from ingest_media import read_mark
from rtsp_fixture import RtspTestServer, free_port

from service.ingest.errors import (
    InvalidSourceURLError,
    SourceError,
    SourceUnreachableError,
    SourceURLForbiddenError,
)
from service.ingest.rtsp import LiveFrame, RtspReader, StreamState
from service.ingest.settings import RtspSettings, UrlPolicy

pytestmark = pytest.mark.integration

# Tests may reach 127.0.0.1 and nothing else internal.
LOOPBACK_ONLY = UrlPolicy(allow_networks=("127.0.0.1/32",))
FAST = RtspSettings(
    open_timeout_s=10.0,
    read_timeout_s=3.0,
    backoff_initial_s=0.1,
    backoff_max_s=0.5,
    max_attempts=None,
    buffer_size=64,
)


def _settings(**changes: object) -> RtspSettings:
    fields = {**FAST.__dict__, **changes}
    return RtspSettings(**fields)  # type: ignore[arg-type]


def _read_until(
    reader: RtspReader, done: Callable[[list[LiveFrame]], bool], timeout: float = 30.0
) -> list[LiveFrame]:
    frames: list[LiveFrame] = []
    deadline = time.monotonic() + timeout
    while not done(frames):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {len(frames)} frames: {reader.status()}")
        frame = reader.read(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def _wait_status(reader: RtspReader, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached: {reader.status()}")
        time.sleep(0.05)


@pytest.fixture
def readers() -> Iterator[list[RtspReader]]:
    """Readers made by a test, stopped at teardown whatever happened."""
    made: list[RtspReader] = []
    yield made
    for reader in made:
        reader.stop(timeout=10)


def test_frames_arrive_in_order(rtsp_server: RtspTestServer, readers: list[RtspReader]) -> None:
    states: list[StreamState] = []
    reader = RtspReader(rtsp_server.url("cam"), FAST, LOOPBACK_ONLY, on_state=states.append)
    readers.append(reader)
    assert reader.state is StreamState.IDLE
    reader.start()
    frames = _read_until(reader, lambda got: len(got) >= 12)
    assert reader.state is StreamState.STREAMING
    assert states[:2] == [StreamState.CONNECTING, StreamState.STREAMING]
    for frame in frames:
        assert frame.image.shape == (64, 96, 3)
        assert frame.image.dtype == np.uint8
        assert frame.connection == 1
    # The served file's frames, from its first, none missing (the buffer is large here).
    assert [read_mark(f.image) for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12))
    status = reader.status()
    assert status.frames_received >= 12
    assert status.frames_dropped == 0
    assert status.connections == 1
    assert status.last_error is None
    reader.stop()
    assert reader.state is StreamState.STOPPED


def test_target_fps_keeps_every_fourth_frame_of_20fps(
    rtsp_server: RtspTestServer, readers: list[RtspReader]
) -> None:
    reader = RtspReader(rtsp_server.url("cam"), _settings(target_fps=5.0), LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    frames = _read_until(reader, lambda got: len(got) >= 8)
    marks = [read_mark(f.image) for f in frames]
    # The first frame has no timestamp and is kept; the schedule starts at the next one.
    assert marks[:2] == [0, 1]
    assert np.diff(marks[1:]).tolist() == [4] * (len(marks) - 2)
    times = [f.source_time_s for f in frames[1:]]
    assert np.allclose(np.diff(times), 0.2)


def test_udp_transport_when_asked(rtsp_server: RtspTestServer, readers: list[RtspReader]) -> None:
    reader = RtspReader(rtsp_server.url("cam"), _settings(transport="udp"), LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    frames = _read_until(reader, lambda got: len(got) >= 5)
    marks = [read_mark(f.image) for f in frames]
    # Datagrams may in principle be lost even on loopback: ask for order, not completeness.
    assert marks == sorted(set(marks))
    assert marks[-1] < 30


def test_resize_on_the_way(rtsp_server: RtspTestServer, readers: list[RtspReader]) -> None:
    reader = RtspReader(rtsp_server.url("cam"), _settings(short_side=32), LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    frames = _read_until(reader, lambda got: len(got) >= 3)
    assert frames[0].image.shape == (32, 48, 3)
    assert [read_mark(f.image) for f in frames] == [0, 1, 2]


def test_a_slow_consumer_gets_the_newest_frames(
    rtsp_server: RtspTestServer, readers: list[RtspReader]
) -> None:
    reader = RtspReader(rtsp_server.url("cam"), _settings(buffer_size=2), LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    # Read nothing while the source sends 30 frames.
    _wait_status(reader, lambda: reader.status().frames_sampled >= 30)
    before = reader.status()
    frame = reader.read(timeout=5)
    assert frame is not None
    # The buffer holds the 2 newest frames: nothing older than sampled - 2 can come out.
    assert frame.index >= before.frames_sampled - 2
    assert read_mark(frame.image) >= before.frames_sampled - 2
    after = reader.status()
    assert after.frames_dropped >= before.frames_sampled - 2
    assert after.frames_dropped + 2 >= after.frames_sampled - 1


def test_reconnects_after_the_server_restarts(
    rtsp_server: RtspTestServer, readers: list[RtspReader]
) -> None:
    states: list[StreamState] = []
    reader = RtspReader(rtsp_server.url("cam"), FAST, LOOPBACK_ONLY, on_state=states.append)
    readers.append(reader)
    reader.start()
    _read_until(reader, lambda got: len(got) >= 5)

    rtsp_server.stop()
    assert reader.wait_for(StreamState.RECONNECTING, timeout=15)
    # While the server is down every attempt is refused and the reader keeps backing off.
    _wait_status(reader, lambda: reader.status().connections >= 3)
    assert reader.state in (StreamState.RECONNECTING, StreamState.CONNECTING)
    assert isinstance(reader.status().last_error, SourceError | SourceUnreachableError)

    rtsp_server.start()
    frames = _read_until(reader, lambda got: any(f.connection >= 3 for f in got))
    assert reader.state is StreamState.STREAMING
    fresh = [f for f in frames if f.connection >= 3]
    # The new connection plays the file from its start again.
    assert read_mark(fresh[0].image) == 0
    status = reader.status()
    assert status.reconnects >= 2
    assert StreamState.RECONNECTING in states
    assert states[-1] is StreamState.STREAMING


def test_unreachable_address_ends_failed(readers: list[RtspReader]) -> None:
    port = free_port()  # nobody listens: connections are refused
    settings = _settings(max_attempts=3, backoff_initial_s=0.05)
    reader = RtspReader(f"rtsp://127.0.0.1:{port}/cam", settings, LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    assert reader.wait_for(StreamState.FAILED, timeout=30)
    status = reader.status()
    assert isinstance(status.last_error, SourceUnreachableError)
    assert status.connections == 3
    assert status.reconnects == 2
    assert reader.read(timeout=0.1) is None


class _SilentServer:
    """Accepts TCP connections on loopback and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.sock.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def test_a_silent_server_fails_as_unreachable(
    silent_server: _SilentServer, readers: list[RtspReader]
) -> None:
    settings = _settings(open_timeout_s=1.0, read_timeout_s=1.0, max_attempts=1)
    reader = RtspReader(f"rtsp://127.0.0.1:{silent_server.port}/cam", settings, LOOPBACK_ONLY)
    readers.append(reader)
    started = time.monotonic()
    reader.start()
    assert reader.wait_for(StreamState.FAILED, timeout=30)
    # Told as a refused port is (see the abuse tests): a silent port is not told apart.
    assert isinstance(reader.status().last_error, SourceUnreachableError)
    assert time.monotonic() - started < 15
    assert len(silent_server.accepted) == 1


def test_unknown_mount_fails_with_a_source_error(
    rtsp_server: RtspTestServer, readers: list[RtspReader]
) -> None:
    reader = RtspReader(rtsp_server.url("nope"), _settings(max_attempts=1), LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    assert reader.wait_for(StreamState.FAILED, timeout=30)
    error = reader.status().last_error
    assert isinstance(error, SourceError)
    assert "404" in error.message


@pytest.mark.parametrize(
    ("template", "policy", "error"),
    [
        ("rtsp://127.0.0.1:{port}/cam", UrlPolicy(), SourceURLForbiddenError),
        ("rtsp://127.0.0.2:{port}/cam", LOOPBACK_ONLY, SourceURLForbiddenError),
        ("rtsp://[::ffff:127.0.0.1]:{port}/cam", UrlPolicy(), SourceURLForbiddenError),
        (
            "rtsp://127.0.0.1:{port}/cam",
            UrlPolicy(allow_loopback=True, deny_networks=("127.0.0.0/8",)),
            SourceURLForbiddenError,
        ),
        ("http://127.0.0.1:{port}/cam", LOOPBACK_ONLY, InvalidSourceURLError),
        ("file:///etc/passwd", LOOPBACK_ONLY, InvalidSourceURLError),
    ],
)
def test_denied_urls_are_refused_before_any_connection(
    silent_server: _SilentServer, template: str, policy: UrlPolicy, error: type[Exception]
) -> None:
    url = template.format(port=silent_server.port)
    with pytest.raises(error):
        RtspReader(url, FAST, policy)
    time.sleep(0.2)
    assert silent_server.accepted == []


def test_a_name_is_resolved_and_refused_by_the_reader_before_it_connects(
    silent_server: _SilentServer, readers: list[RtspReader]
) -> None:
    """The constructor looks up no name (it runs on the worker's serving loop, and a lookup may
    block for seconds): a name that resolves to a refused address fails the reader thread, with
    the policy's error, and nothing connects."""
    reader = RtspReader(f"rtsp://localhost:{silent_server.port}/cam", FAST, UrlPolicy())
    readers.append(reader)
    reader.start()
    assert reader.wait_for(StreamState.FAILED, timeout=30)
    error = reader.status().last_error
    assert isinstance(error, SourceURLForbiddenError) and "loopback" in error.message
    assert reader.status().connections == 0
    time.sleep(0.2)
    assert silent_server.accepted == []


def test_password_never_shows_in_status(
    silent_server: _SilentServer, readers: list[RtspReader]
) -> None:
    settings = _settings(open_timeout_s=0.5, read_timeout_s=0.5, max_attempts=1)
    url = f"rtsp://admin:hunter2@127.0.0.1:{silent_server.port}/cam"
    reader = RtspReader(url, settings, LOOPBACK_ONLY)
    readers.append(reader)
    reader.start()
    assert reader.wait_for(StreamState.FAILED, timeout=30)
    status = reader.status()
    assert "hunter2" not in status.url
    assert status.last_error is not None and "hunter2" not in status.last_error.message
