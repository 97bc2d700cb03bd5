"""Fixtures for the ingest tests, and the helper modules beside them made importable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib, which does not put test directories on sys.path; the
# helper modules here (ingest_media, the RTSP fixture) are imported by name from the tests.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from ingest_media import clip_bytes, write_clip  # noqa: E402
from rtsp_fixture import PACKAGES, RtspTestServer, missing_requirements  # noqa: E402


@pytest.fixture(scope="session")
def h264_mp4() -> bytes:
    """30 marked frames, 64x48 at 10 fps, H.264 in MP4 with a keyframe every 5 frames."""
    return clip_bytes("mp4", "h264", gop_size=5)


@pytest.fixture(scope="session")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s H.264 MP4 of marked frames (96x64 at 20 fps, a keyframe every 10) to serve."""
    path = tmp_path_factory.mktemp("rtsp") / "live.mp4"
    write_clip(path, "mp4", "h264", num_frames=240, width=96, height=64, fps=20, gop_size=10)
    return path


@pytest.fixture(scope="session")
def rtsp_requirements() -> None:
    """Fails, never skips, when the RTSP server's Debian packages are missing."""
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(
            f"{reason}. Install the Debian packages {' '.join(PACKAGES)} "
            "(scripts/install_system_deps.sh does, as root)."
        )


@pytest.fixture
def rtsp_server(
    rtsp_requirements: None, live_clip: Path, tmp_path: Path
) -> Iterator[RtspTestServer]:
    """A running GStreamer RTSP server on 127.0.0.1 serving ``live_clip`` at /cam."""
    server = RtspTestServer({"cam": live_clip}, log_dir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
