"""Writes test clips with PyAV and reads back which frame a decoded picture was.

Each frame carries its index as 8 vertical bands (bit b of the index white or black), which
survives lossy codecs, scaling and chroma subsampling, so a test can check that the frames a
sampler returned are the frames that were written at those positions.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

BITS = 8

# Segment centres of 30 frames cut into 8 segments: floor((i + 0.5) * 30 / 8).
UNIFORM_30_8 = [1, 5, 9, 13, 16, 20, 24, 28]

# SVT-AV1 prints its whole configuration unless told to log errors only.
os.environ.setdefault("SVT_LOG", "1")

# Quiet encoders whose log lines would bury test output.
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "hevc": {"x265-params": "log-level=error"},
    "libx265": {"x265-params": "log-level=error"},
}


def marked_frame(index: int, height: int, width: int) -> npt.NDArray[np.uint8]:
    """An RGB frame whose bands spell ``index`` in binary, least significant bit on the left."""
    frame = np.zeros((height, width, 3), np.uint8)
    bounds = np.linspace(0, width, BITS + 1).astype(int)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[:, bounds[bit] : bounds[bit + 1]] = 255
    return frame


def read_mark(frame: npt.NDArray[np.uint8]) -> int:
    """The index a :func:`marked_frame` spells, read from the middle of each band."""
    width = frame.shape[1]
    bounds = np.linspace(0, width, BITS + 1)
    value = 0
    for bit in range(BITS):
        lo, hi = bounds[bit], bounds[bit + 1]
        margin = (hi - lo) / 4
        band = frame[:, int(lo + margin) : max(int(hi - margin), int(lo + margin) + 1)]
        if band.mean() > 127:
            value |= 1 << bit
    return value


def read_marks(frames: npt.NDArray[np.uint8]) -> list[int]:
    """:func:`read_mark` of each frame of ``(T, H, W, 3)``."""
    return [read_mark(f) for f in frames]


def write_clip(
    target: str | Path | io.BytesIO,
    container: str,
    codec: str,
    num_frames: int = 30,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    *,
    pts_ms: Sequence[int] | None = None,
    rotation: float | None = None,
    pix_fmt: str | None = None,
    gop_size: int | None = None,
    frames: Sequence[npt.NDArray[np.uint8]] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Encodes a clip of marked frames.

    Args:
        target: File path or buffer.
        container: FFmpeg muxer name ("mp4", "matroska", "webm", "avi", "mov", "mpegts").
        codec: Encoder name ("h264", "hevc", "vp9", "mpeg4", "mjpeg"...).
        num_frames: Frames written (ignored when ``pts_ms`` or ``frames`` is given).
        width: Frame width.
        height: Frame height.
        fps: Nominal frame rate.
        pts_ms: Presentation times in milliseconds, for variable frame rate.
        rotation: Display rotation in degrees counter-clockwise, written as a display matrix.
        pix_fmt: Pixel format; defaults to yuv420p (yuvj420p for MJPEG).
        gop_size: Keyframe interval.
        frames: Explicit RGB frames instead of marked ones.
        options: Muxer options (``{"movflags": "faststart"}``).
    """
    if frames is None:
        count = len(pts_ms) if pts_ms is not None else num_frames
        frames = [marked_frame(i, height, width) for i in range(count)]
    with av.open(target, mode="w", format=container, options=options or {}) as out:
        encoder_options = dict(_ENCODER_OPTIONS.get(codec, {}))
        if gop_size is not None:
            # No extra keyframes at scene cuts, so keyframes fall exactly every gop_size frames.
            encoder_options["sc_threshold"] = "0"
        stream = out.add_stream(codec, rate=fps, options=encoder_options)
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        time_base = Fraction(1, 1000) if pts_ms is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = pts_ms[i] if pts_ms is not None else i
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def clip_bytes(container: str, codec: str, **kwargs: object) -> bytes:
    """:func:`write_clip` into memory."""
    buffer = io.BytesIO()
    write_clip(buffer, container, codec, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def audio_only(container: str = "matroska", codec: str = "flac") -> bytes:
    """A one-second file that holds only an audio track."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=8000)
        stream.layout = "mono"
        samples = np.zeros((1, 8000), np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buffer.getvalue()
