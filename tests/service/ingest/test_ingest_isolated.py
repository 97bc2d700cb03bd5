"""Decoding in a child process: same answers, typed errors carried over, hangs killed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from ingest_media import UNIFORM_30_8, read_marks

from service.ingest import ClipLimits, Sampling, decode_clip
from service.ingest.errors import DecodeTimeoutError, NotAVideoError, TruncatedError
from service.ingest.isolated import decode_clip_isolated


def test_same_frames_as_in_process(h264_mp4: bytes, tmp_path: Path) -> None:
    local = decode_clip(h264_mp4, Sampling(num_frames=8, num_crops=3), short_side=24)
    isolated = decode_clip_isolated(h264_mp4, Sampling(num_frames=8, num_crops=3), short_side=24)
    np.testing.assert_array_equal(isolated.views, local.views)
    assert isolated.info == local.info
    path = tmp_path / "clip.mp4"
    path.write_bytes(h264_mp4)
    assert read_marks(decode_clip_isolated(path).frames) == UNIFORM_30_8


def test_typed_errors_cross_the_boundary(h264_mp4: bytes) -> None:
    with pytest.raises(NotAVideoError, match="not a video") as caught:
        decode_clip_isolated(b"definitely not a video" * 10)
    assert caught.value.code == "not_a_video"
    with pytest.raises(TruncatedError):
        decode_clip_isolated(h264_mp4[:-900])


def test_a_hanging_decode_is_killed(tmp_path: Path) -> None:
    # Opening a FIFO nobody writes to blocks forever: only killing the process ends it.
    fifo = tmp_path / "upload.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="stopped"):
        decode_clip_isolated(fifo, limits=ClipLimits(max_decode_seconds=0.5), grace_s=1.0)
    assert time.monotonic() - started < 10


def test_caller_mistakes_are_not_disguised_as_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        decode_clip_isolated(tmp_path / "missing.mp4")
