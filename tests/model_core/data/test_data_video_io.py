"""Tests of writing clips and streams as real video files and decoding them again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_core.data import ClipSpec, generate_clip, generate_stream
from model_core.data.video_io import (
    available_codecs,
    decode_video_bytes,
    encode_video_bytes,
    probe_video,
    read_video,
    write_video,
)

av = pytest.importorskip("av")


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_mp4_round_trip_of_a_clip(tmp_path: Path) -> None:
    clip = generate_clip(5, spec=ClipSpec(frames=16))
    path = write_video(tmp_path / "clip.mp4", clip)
    info = probe_video(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.fps == pytest.approx(clip.fps)
    decoded = read_video(path)
    assert decoded.shape == clip.frames.shape and decoded.dtype == np.uint8
    # Lossy 4:2:0 coding of noisy frames: a few grey levels on average, no more.
    assert mean_abs_error(decoded, clip.frames) < 6.0


def test_a_stream_with_odd_sides_is_padded_to_even(tmp_path: Path) -> None:
    stream = generate_stream(1, num_actions=2, spec=ClipSpec(size=33, fps=15.0))
    decoded = read_video(write_video(tmp_path / "stream.mp4", stream))
    n = len(stream.frames)
    assert decoded.shape == (n, 34, 34, 3)
    assert mean_abs_error(decoded[:, :33, :33], stream.frames) < 8.0
    assert probe_video(tmp_path / "stream.mp4").fps == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("suffix", "codec", "decoder", "tolerance"),
    [
        (".mkv", None, "vp9", 6.0),
        (".webm", None, "vp9", 6.0),
        (".avi", None, "mpeg4", 6.0),
        (".avi", "mjpeg", "mjpeg", 6.0),
        (".mkv", "libvpx", "vp8", 6.0),
        (".mkv", "ffv1", "ffv1", 0.0),
    ],
)
def test_other_containers_and_codecs(
    tmp_path: Path, suffix: str, codec: str | None, decoder: str, tolerance: float
) -> None:
    wanted = codec or {".mkv": "libvpx-vp9", ".webm": "libvpx-vp9", ".avi": "mpeg4"}[suffix]
    if wanted not in available_codecs():
        pytest.skip(f"this PyAV build has no {wanted} encoder")
    clip = generate_clip(3)
    path = write_video(tmp_path / f"clip{suffix}", clip, codec=codec)
    assert probe_video(path).codec == decoder
    decoded = read_video(path)
    assert decoded.shape == clip.frames.shape
    assert mean_abs_error(decoded, clip.frames) <= tolerance


def test_a_bare_array_needs_a_frame_rate(tmp_path: Path) -> None:
    frames = generate_clip(0).frames
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "a.mp4", frames)
    path = write_video(tmp_path / "a.mp4", frames, fps=25.0, options={"crf": "30"})
    assert probe_video(path).fps == pytest.approx(25.0)
    assert len(read_video(path)) == len(frames)


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    frames = generate_clip(0).frames
    with pytest.raises(ValueError, match="default codec"):
        write_video(tmp_path / "a.xyz", frames, fps=10.0)
    with pytest.raises(ValueError, match="cannot encode"):
        write_video(tmp_path / "a.mp4", frames, fps=10.0, codec="no-such-codec")
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", frames.astype(np.float32), fps=10.0)


def test_a_video_encoded_in_memory_decodes_as_the_same_file_written_to_disk(
    tmp_path: Path,
) -> None:
    clip = generate_clip(7)
    for suffix in (".mp4", ".mkv"):
        data = encode_video_bytes(clip.frames, clip.fps, suffix=suffix, options={"crf": "28"})
        written = write_video(tmp_path / f"clip{suffix}", clip, options={"crf": "28"})
        from_memory = decode_video_bytes(data)
        assert np.array_equal(from_memory, read_video(written))
        assert 0 < mean_abs_error(from_memory, clip.frames) < 8.0
    with pytest.raises(ValueError, match="unknown video file type"):
        encode_video_bytes(clip.frames, clip.fps, suffix=".xyz")
