"""Write clips and streams as real video files, and read them back, through PyAV.

PyAV is imported inside the functions, so ``model_core`` imports without it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Protocol

import numpy as np

__all__ = [
    "CODEC_PRESETS",
    "CodecPreset",
    "VideoInfo",
    "available_codecs",
    "decode_video_bytes",
    "encode_video_bytes",
    "probe_video",
    "read_video",
    "write_video",
]


@dataclass(frozen=True)
class CodecPreset:
    """How vidrec encodes with one codec.

    Attributes:
        codec: FFmpeg encoder name.
        pix_fmt: Pixel format handed to the encoder.
        options: Encoder options (FFmpeg's names, string values).
        bit_rate: Target bit rate in bits per second, for codecs driven by rate; 0 for none.
    """

    codec: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: int = 0

    @property
    def even_size(self) -> bool:
        """Whether the pixel format subsamples chroma by two, so frames need even sides."""
        return self.pix_fmt in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p")


# High quality by default: these files exist to test the decode path on real codec output, and a
# model should classify them as it classifies the raw frames.
CODEC_PRESETS: dict[str, CodecPreset] = {
    "libx264": CodecPreset("libx264", "yuv420p", {"crf": "16", "preset": "veryfast"}),
    "libvpx-vp9": CodecPreset(
        "libvpx-vp9", "yuv420p", {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
    ),
    "libvpx": CodecPreset("libvpx", "yuv420p", {"crf": "8", "deadline": "realtime"}, 8_000_000),
    "mpeg4": CodecPreset("mpeg4", "yuv420p", {"qscale": "2"}, 8_000_000),
    "mjpeg": CodecPreset("mjpeg", "yuvj420p", {"qscale": "2"}, 20_000_000),
    "ffv1": CodecPreset("ffv1", "bgr0"),  # lossless
}

# The codec each container gets when none is asked for.
DEFAULT_CODECS: dict[str, str] = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".mkv": "libvpx-vp9",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
}
# FFmpeg's muxer for each file type, for files written to memory (a path names its own).
MUXERS: dict[str, str] = {
    ".mp4": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}


class _Video(Protocol):
    """Anything with frames and a frame rate, such as a ``Clip`` or a ``Stream``."""

    @property
    def frames(self) -> np.ndarray: ...

    @property
    def fps(self) -> float: ...


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as its container reports it.

    Attributes:
        frames: Number of frames decoded.
        width: Frame width, pixels.
        height: Frame height, pixels.
        fps: Average frame rate.
        codec: Decoder name.
        pix_fmt: Pixel format of the decoded frames.
    """

    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str


def available_codecs() -> tuple[str, ...]:
    """The names in ``CODEC_PRESETS`` that this PyAV build can encode."""
    import av

    return tuple(name for name in CODEC_PRESETS if name in av.codecs_available)


def write_video(
    path: str | Path,
    video: np.ndarray | _Video,
    fps: float | None = None,
    codec: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode frames as a video file.

    The container follows the file's suffix (``.mp4``, ``.mkv``, ``.webm``, ``.avi``, ``.mov``);
    the codec defaults to H.264 for MP4 and MOV, VP9 for MKV and WebM and MPEG-4 Part 2 for AVI.
    Other pairs come by argument, e.g. ``codec="mjpeg"`` or ``codec="ffv1"`` (lossless) in
    ``.mkv`` or ``.avi``. Codecs that subsample chroma need even sides: an odd height or width is
    padded by repeating the last row or column, so the file is then one pixel larger.

    Args:
        path: Output file; its suffix picks the container.
        video: ``(T, H, W, 3)`` uint8 RGB frames, or an object with ``frames`` and ``fps``
            (a ``Clip`` or a ``Stream``).
        fps: Frame rate; defaults to ``video.fps``, and is required for a bare array.
        codec: An FFmpeg encoder; presets exist for the names in ``CODEC_PRESETS``.
        options: Encoder options that override the preset's.

    Returns:
        The path written.
    """
    path = Path(path)
    if isinstance(video, np.ndarray):
        if fps is None:
            raise ValueError("fps is required when writing a bare array")
        frames = video
    else:
        frames = video.frames
        fps = video.fps if fps is None else fps
    suffix = path.suffix.lower()
    codec = codec or DEFAULT_CODECS.get(suffix)
    if codec is None:
        raise ValueError(f"no default codec for {suffix!r}; pass codec= or use {DEFAULT_CODECS}")
    _encode(str(path), None, frames, fps, codec, options)
    return path


def encode_video_bytes(
    frames: np.ndarray,
    fps: float,
    suffix: str = ".mp4",
    codec: str | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode frames as a video file held in memory (what an upload carries).

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        fps: Frame rate.
        suffix: The file type, as ``write_video`` reads it from a path (``".mp4"``, ``".mkv"``...).
        codec: An FFmpeg encoder; defaults as ``write_video`` picks for the suffix.
        options: Encoder options that override the preset's.

    Returns:
        The file's bytes.
    """
    if suffix not in MUXERS:
        raise ValueError(f"unknown video file type {suffix!r}; expected one of {sorted(MUXERS)}")
    codec = codec or DEFAULT_CODECS[suffix]
    buffer = io.BytesIO()
    _encode(buffer, MUXERS[suffix], frames, fps, codec, options)
    return buffer.getvalue()


def decode_video_bytes(data: bytes) -> np.ndarray:
    """Decode every frame of an in-memory video file: ``(T, H, W, 3)`` uint8 RGB."""
    return read_video(io.BytesIO(data))


def _encode(
    target: str | IO[bytes],
    container_format: str | None,
    frames: np.ndarray,
    fps: float,
    codec: str,
    options: dict[str, str] | None,
) -> None:
    """Encode ``frames`` with ``codec`` into ``target`` (a path, or a buffer with a format)."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("cannot write a video with no frames")
    if codec not in av.codecs_available:
        raise ValueError(f"this PyAV build cannot encode {codec!r}")
    preset = CODEC_PRESETS.get(codec, CodecPreset(codec, "yuv420p"))
    if preset.even_size:
        frames = _pad_even(frames)
    _, height, width, _ = frames.shape

    with av.open(target, mode="w", format=container_format) as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate, {**preset.options, **(options or {})})
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec!r} is not a video codec")
        stream.width = width
        stream.height = height
        stream.pix_fmt = preset.pix_fmt
        if preset.bit_rate:
            stream.bit_rate = preset.bit_rate
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row and/or column so both sides are even."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def read_video(path: str | Path | IO[bytes]) -> np.ndarray:
    """Decode every frame of a video file's first video stream.

    Args:
        path: The file (or a binary file object).

    Returns:
        ``(T, H, W, 3)`` uint8 RGB frames.
    """
    import av

    source = path if isinstance(path, io.IOBase) else str(path)
    with av.open(source, mode="r") as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"{path!r} holds no video frames")
    return np.stack(frames)


def probe_video(path: str | Path) -> VideoInfo:
    """Decode a video file and report what it holds.

    Args:
        path: The file.

    Returns:
        Frame count, size, frame rate, codec and pixel format.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.base_rate or 0
        return VideoInfo(
            frames=count,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            codec=stream.codec_context.name,
            pix_fmt=str(stream.codec_context.pix_fmt),
        )
