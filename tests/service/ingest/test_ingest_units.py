"""Pure parts of ingest: sampling plans, crops, the fps sampler, the buffer, backoff, states."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from service.ingest.buffer import LatestBuffer
from service.ingest.rtsp import (
    _TRANSITIONS,
    InvalidTransitionError,
    RtspReader,
    StreamState,
    backoff_delay,
)
from service.ingest.sampling import FpsSampler, Sampling, crop_boxes, plan_indices, spatial_views
from service.ingest.settings import ClipLimits, RtspSettings, UrlPolicy
from service.ingest.sniff import sniff


def test_uniform_plan_on_a_constant_rate() -> None:
    times = np.arange(100) / 25.0
    plan = plan_indices(times, Sampling(num_frames=4))
    assert plan.tolist() == [[12, 37, 62, 87]]


def test_uniform_plan_with_more_frames_than_the_clip() -> None:
    plan = plan_indices(np.arange(3) / 10.0, Sampling(num_frames=6))
    assert plan.tolist() == [[0, 0, 1, 1, 2, 2]]


def test_dense_plan_clamps_and_centres() -> None:
    times = np.arange(10) / 10.0
    # A 5-frame window in 10 frames starts at (10 - 5) // 2 = 2.
    assert plan_indices(times, Sampling("dense", 3, stride=2)).tolist() == [[2, 4, 6]]
    assert plan_indices(times, Sampling("dense", 4, stride=5)).tolist() == [[0, 5, 9, 9]]


def test_sampling_validation() -> None:
    for bad in (
        {"num_frames": 0},
        {"stride": 0},
        {"num_clips": 0},
        {"num_crops": 2},
        {"mode": "random"},
    ):
        with pytest.raises(ValueError):
            Sampling(**bad)  # type: ignore[arg-type]
    assert Sampling(num_clips=2, num_crops=3).num_views == 6


def test_crop_boxes_follow_the_long_side() -> None:
    assert crop_boxes(48, 64, 3) == [(0, 0, 48, 48), (0, 8, 48, 48), (0, 16, 48, 48)]
    assert crop_boxes(64, 48, 3) == [(0, 0, 48, 48), (8, 0, 48, 48), (16, 0, 48, 48)]
    assert crop_boxes(30, 40, 1) == [(0, 0, 30, 40)]
    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    views = spatial_views(frames, 3)
    assert views.shape == (3, 2, 4, 4, 3)
    np.testing.assert_array_equal(views[2], frames[:, :, 2:6])


def test_fps_sampler_keeps_an_even_rate() -> None:
    sampler = FpsSampler(10.0)
    times = np.arange(0, 2, 1 / 25)  # 25 fps for 2 s
    kept = [t for t in times if sampler.accept(float(t))]
    assert len(kept) == 20
    assert np.all(np.diff(kept) >= 0.08 - 1e-9)


def test_fps_sampler_restarts_when_the_clock_goes_back() -> None:
    sampler = FpsSampler(5.0)
    assert sampler.accept(100.0)
    assert not sampler.accept(100.1)
    assert sampler.accept(0.0)  # the source restarted its clock
    assert not sampler.accept(0.1)
    assert sampler.accept(0.2)


def test_fps_sampler_after_a_pause_does_not_burst() -> None:
    sampler = FpsSampler(10.0)
    assert sampler.accept(0.0)
    assert sampler.accept(5.0)
    assert not sampler.accept(5.02)
    assert sampler.accept(5.1)


def test_fps_sampler_untimed_frames() -> None:
    sampler = FpsSampler(10.0)
    assert sampler.accept(None)
    assert sampler.accept(0.05)
    assert not sampler.accept(None)
    assert FpsSampler(None).accept(None)


def test_latest_buffer_drops_the_oldest() -> None:
    buffer: LatestBuffer[int] = LatestBuffer(2)
    assert [buffer.put(i) for i in range(5)] == [False, False, True, True, True]
    assert buffer.dropped == 3
    assert [buffer.get(0), buffer.get(0), buffer.get(0)] == [3, 4, None]


def test_latest_buffer_wakes_a_waiting_consumer() -> None:
    buffer: LatestBuffer[str] = LatestBuffer(1)
    threading.Timer(0.05, buffer.put, args=("frame",)).start()
    assert buffer.get(timeout=5) == "frame"
    threading.Timer(0.05, buffer.close).start()
    started = time.monotonic()
    assert buffer.get(timeout=5) is None
    assert time.monotonic() - started < 4


def test_backoff_grows_caps_and_jitters() -> None:
    settings = RtspSettings(
        backoff_initial_s=0.5, backoff_multiplier=2, backoff_max_s=3, jitter=0.0
    )
    rng = random.Random(0)
    assert [backoff_delay(settings, n, rng) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RtspSettings(backoff_initial_s=1.0, backoff_max_s=1.0, jitter=0.2)
    delays = [backoff_delay(jittered, 3, rng) for _ in range(200)]
    assert 0.8 <= min(delays) < 0.85
    assert 1.15 < max(delays) <= 1.2


def test_state_machine() -> None:
    assert StreamState.STOPPED.is_terminal and StreamState.FAILED.is_terminal
    assert not StreamState.RECONNECTING.is_terminal
    assert _TRANSITIONS[StreamState.STOPPED] == frozenset()
    assert StreamState.STREAMING not in _TRANSITIONS[StreamState.RECONNECTING]
    reader = RtspReader("rtsp://8.8.8.8/x", policy=UrlPolicy())
    with pytest.raises(InvalidTransitionError, match="idle -> streaming"):
        reader._transition(StreamState.STREAMING)
    reader.stop()  # never started: straight to stopped
    assert reader.state is StreamState.STOPPED
    assert reader.read(timeout=0.01) is None
    with pytest.raises(InvalidTransitionError, match="stopped -> connecting"):
        reader._transition(StreamState.CONNECTING)


def test_settings_validation() -> None:
    for bad in (
        {"transport": "http"},
        {"buffer_size": 0},
        {"target_fps": 0},
        {"jitter": 1.0},
        {"max_attempts": 0},
    ):
        with pytest.raises(ValueError):
            RtspSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ClipLimits(max_frames=0)
    with pytest.raises(ValueError):
        ClipLimits(max_decode_seconds=0)


@pytest.mark.parametrize(
    ("head", "kind", "name"),
    [
        (b"", "empty", ""),
        (b"\x00\x00\x00\x20ftypisom", "video", "MP4/MOV"),
        (b"\x00\x00\x00\x20ftypM4A ", "audio", "M4A audio"),
        (b"\x1a\x45\xdf\xa3", "video", "Matroska/WebM"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video", "AVI"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio", "WAV audio"),
        (b"FLV\x01", "other_video", "FLV"),
        (b"OggS\x00", "other_video", "Ogg"),
        (b"#EXTM3U\n", "playlist", "playlist"),
        (b"\xef\xbb\xbfffconcat version 1.0", "playlist", "playlist"),
        (b"file 'a.mp4'\n", "playlist", "concat list"),
        (b"hello", "text", "text"),
        (bytes([0x80, 0x81, 0xFE]), "unknown", ""),
    ],
)
def test_sniff(head: bytes, kind: str, name: str) -> None:
    seen = sniff(head)
    assert (seen.kind, seen.name) == (kind, name)
