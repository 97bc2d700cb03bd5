"""Decoding clips of every accepted container and codec, checked against the frames written."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ingest_media import UNIFORM_30_8, clip_bytes, read_marks, write_clip

from service.ingest import ClipLimits, Sampling, decode_clip, probe_clip

# (muxer, encoder, canonical codec name); every pair PyAV's bundled FFmpeg can write and read here.
CASES = [
    ("mp4", "h264", "h264"),
    ("mp4", "hevc", "hevc"),
    ("mp4", "mpeg4", "mpeg4"),
    ("mp4", "libsvtav1", "av1"),
    ("mov", "h264", "h264"),
    ("mov", "mjpeg", "mjpeg"),
    ("matroska", "h264", "h264"),
    ("matroska", "hevc", "hevc"),
    ("matroska", "vp9", "vp9"),
    ("webm", "vp9", "vp9"),
    ("webm", "vp8", "vp8"),
    ("avi", "mpeg4", "mpeg4"),
    ("avi", "mjpeg", "mjpeg"),
]


@pytest.mark.parametrize(("muxer", "encoder", "codec"), CASES)
def test_uniform_sampling_returns_the_written_frames(muxer: str, encoder: str, codec: str) -> None:
    data = clip_bytes(muxer, encoder)
    clip = decode_clip(data, Sampling(num_frames=8))
    assert clip.views.shape == (1, 8, 48, 64, 3)
    assert clip.views.dtype == np.uint8
    assert clip.frame_indices.tolist() == [UNIFORM_30_8]
    assert read_marks(clip.frames) == UNIFORM_30_8
    assert clip.info.codec == codec
    assert clip.info.num_frames == 30
    assert clip.info.duration_s == pytest.approx(3.0)
    np.testing.assert_allclose(clip.timestamps_s[0], np.array(UNIFORM_30_8) / 10)


def test_probe_describes_without_sampling(h264_mp4: bytes) -> None:
    info = probe_clip(h264_mp4)
    assert (info.width, info.height, info.num_frames) == (64, 48, 30)
    assert info.container.startswith("mov,mp4")
    assert info.num_keyframes == 6
    assert info.avg_fps == pytest.approx(10.0)
    assert info.size_bytes == len(h264_mp4)


def test_inputs_bytes_buffer_and_path_agree(h264_mp4: bytes, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(h264_mp4)
    from_bytes = decode_clip(h264_mp4)
    from_buffer = decode_clip(io.BytesIO(h264_mp4))
    from_path = decode_clip(path)
    from_str = decode_clip(str(path))
    for other in (from_buffer, from_path, from_str):
        np.testing.assert_array_equal(other.views, from_bytes.views)


def test_seeking_decodes_less_and_returns_the_same_frames() -> None:
    data = clip_bytes("mp4", "h264", num_frames=60, gop_size=5)
    plan = Sampling(num_frames=4)
    sparse = decode_clip(data, plan, allow_seek=True)
    full = decode_clip(data, plan, allow_seek=False)
    np.testing.assert_array_equal(sparse.views, full.views)
    assert read_marks(sparse.frames) == [7, 22, 37, 52]
    assert sparse.seeks == 4
    assert full.seeks == 1
    # Keyframes every 5 frames: each wanted frame costs its keyframe and the 2 frames between.
    assert sparse.frames_decoded == 12
    assert full.frames_decoded == 53


def test_seeking_in_matroska() -> None:
    data = clip_bytes("matroska", "vp9", num_frames=60, gop_size=10)
    clip = decode_clip(data, Sampling(num_frames=3))
    assert read_marks(clip.frames) == [10, 30, 50]
    assert clip.frames_decoded < 60


def test_dense_sampling_takes_a_centred_strided_window(h264_mp4: bytes) -> None:
    clip = decode_clip(h264_mp4, Sampling(mode="dense", num_frames=4, stride=2))
    # Window of 7 frames centred in 30: starts at (30 - 7) // 2 = 11.
    assert read_marks(clip.frames) == [11, 13, 15, 17]


def test_dense_views_spread_over_the_clip(h264_mp4: bytes) -> None:
    clip = decode_clip(h264_mp4, Sampling(mode="dense", num_frames=4, stride=3, num_clips=3))
    assert clip.views.shape[:2] == (3, 4)
    # Window of 10 frames; starts spread over [0, 20].
    assert [read_marks(v) for v in clip.views] == [[0, 3, 6, 9], [10, 13, 16, 19], [20, 23, 26, 29]]


def test_dense_window_longer_than_the_clip_repeats_the_last_frame() -> None:
    data = clip_bytes("matroska", "h264", num_frames=5)
    clip = decode_clip(data, Sampling(mode="dense", num_frames=4, stride=2))
    assert read_marks(clip.frames) == [0, 2, 4, 4]


def test_uniform_views_shift_inside_segments(h264_mp4: bytes) -> None:
    clip = decode_clip(h264_mp4, Sampling(num_frames=3, num_clips=2))
    # Segments of 10 frames sampled at 1/4 and 3/4.
    assert [read_marks(v) for v in clip.views] == [[2, 12, 22], [7, 17, 27]]


def test_three_crops_are_squares_along_the_long_side(h264_mp4: bytes) -> None:
    crops = decode_clip(h264_mp4, Sampling(num_frames=2, num_crops=3, num_clips=2))
    assert crops.views.shape == (6, 2, 48, 48, 3)
    full = decode_clip(h264_mp4, Sampling(num_frames=2, num_clips=2))
    for clip_no in range(2):
        frames = full.views[clip_no]
        expected = [frames[:, :, 0:48], frames[:, :, 8:56], frames[:, :, 16:64]]
        for crop_no in range(3):
            np.testing.assert_array_equal(crops.views[clip_no * 3 + crop_no], expected[crop_no])


def test_resizing_in_the_decoder_keeps_the_aspect(h264_mp4: bytes) -> None:
    clip = decode_clip(h264_mp4, Sampling(num_frames=8), short_side=24)
    assert clip.frames.shape == (8, 24, 32, 3)
    assert read_marks(clip.frames) == UNIFORM_30_8


def test_variable_frame_rate_samples_by_time() -> None:
    pts_ms = [0, 40, 80, 500, 540, 1500, 1540, 1580, 2900, 2940]
    data = clip_bytes("mp4", "h264", pts_ms=pts_ms)
    clip = decode_clip(data, Sampling(num_frames=4))
    # Duration 2.98 s (last frame shown for the median 40 ms); sample points at
    # 0.3725, 1.1175, 1.8625, 2.6075 s show frames started at 0.08, 0.54, 1.58, 1.58 s.
    assert read_marks(clip.frames) == [2, 4, 7, 7]
    assert clip.info.duration_s == pytest.approx(2.98)
    np.testing.assert_allclose(clip.timestamps_s[0], [0.08, 0.54, 1.58, 1.58])


def test_single_frame_clip_fills_every_slot() -> None:
    data = clip_bytes("mp4", "h264", num_frames=1)
    clip = decode_clip(data, Sampling(num_frames=8))
    assert read_marks(clip.frames) == [0] * 8
    assert clip.info.num_frames == 1


@pytest.mark.parametrize(
    ("muxer", "encoder", "width", "height", "pix_fmt"),
    [
        ("mp4", "h264", 66, 38, None),
        ("matroska", "vp9", 33, 25, None),
        ("avi", "mjpeg", 33, 25, "yuvj444p"),
        ("mov", "mpeg4", 98, 74, None),
    ],
)
def test_odd_sizes(muxer: str, encoder: str, width: int, height: int, pix_fmt: str | None) -> None:
    data = clip_bytes(muxer, encoder, width=width, height=height, pix_fmt=pix_fmt)
    clip = decode_clip(data)
    assert clip.frames.shape == (8, height, width, 3)
    assert read_marks(clip.frames) == UNIFORM_30_8


def _corner_clip(rotation: float) -> bytes:
    # A red square in the coded frame's top-left corner shows where the corner ends up.
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:12, :12] = (255, 0, 0)
    buffer = io.BytesIO()
    write_clip(buffer, "mp4", "h264", frames=[frame] * 3, rotation=rotation)
    return buffer.getvalue()


def _red_corner(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    corners = {
        "top-left": image[:6, :6],
        "top-right": image[:6, w - 6 :],
        "bottom-left": image[h - 6 :, :6],
        "bottom-right": image[h - 6 :, w - 6 :],
    }
    return max(
        corners, key=lambda k: int(corners[k][..., 0].mean()) - int(corners[k][..., 1].mean())
    )


@pytest.mark.parametrize(
    ("rotation", "shape", "corner"),
    [
        (0, (48, 64), "top-left"),
        # The display matrix angle is counter-clockwise: a quarter turn left moves the top-left
        # corner to the bottom-left, as FFmpeg's own autorotate (transpose=cclock) shows it.
        (90, (64, 48), "bottom-left"),
        (180, (48, 64), "bottom-right"),
        (-90, (64, 48), "top-right"),
    ],
)
def test_rotation_metadata_is_applied(rotation: float, shape: tuple[int, int], corner: str) -> None:
    data = _corner_clip(rotation)
    clip = decode_clip(data, Sampling(num_frames=2))
    assert clip.frames.shape[1:3] == shape
    assert clip.info.rotation == rotation % 360
    assert probe_clip(data).rotation == rotation % 360
    assert _red_corner(clip.frames[0]) == corner


def test_rotation_with_resize_and_crops() -> None:
    clip = decode_clip(_corner_clip(90), Sampling(num_frames=2, num_crops=3), short_side=24)
    # Coded 64x48 scaled to 32x24, turned to 24x32 portrait, then three 24x24 crops down the height.
    assert clip.views.shape == (3, 2, 24, 24, 3)
    assert _red_corner(clip.views[2][0]) == "bottom-left"


def test_faststart_and_moov_at_end_both_decode(tmp_path: Path) -> None:
    for name, options in (("end.mp4", {}), ("start.mp4", {"movflags": "faststart"})):
        # faststart rewrites the file in a second pass, so it needs a real file.
        write_clip(tmp_path / name, "mp4", "h264", options=options)
        assert read_marks(decode_clip(tmp_path / name).frames) == UNIFORM_30_8
    assert (tmp_path / "start.mp4").read_bytes()[24:64].find(b"moov") >= 0


def test_limits_that_pass_exactly() -> None:
    data = clip_bytes("mp4", "h264")
    limits = ClipLimits(max_bytes=len(data), max_width=64, max_height=48, max_pixels=64 * 48)
    assert read_marks(decode_clip(data, limits=limits).frames) == UNIFORM_30_8
