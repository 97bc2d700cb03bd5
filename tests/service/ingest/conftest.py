"""Fixtures for the ingest tests, and the helper modules beside them made importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib, which does not put test directories on sys.path; the
# helper modules here (ingest_media, the RTSP fixture) are imported by name from the tests.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from ingest_media import clip_bytes  # noqa: E402


@pytest.fixture(scope="session")
def h264_mp4() -> bytes:
    """30 marked frames, 64x48 at 10 fps, H.264 in MP4 with a keyframe every 5 frames."""
    return clip_bytes("mp4", "h264", gop_size=5)
