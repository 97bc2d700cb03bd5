"""Decoding uploaded clips with PyAV, within limits.

The path is: size check → open with a demuxer whitelist and no nested protocols → checks on the
declared stream (codec, resolution, duration) → an index pass that reads packets without decoding
them (exact frame count, timestamps and keyframes; catches truncation and over-long clips before
any decoding) → the sampling plan → decoding of just the planned frames, seeking to the keyframe
before each one when that skips work, with RGB conversion and resizing done in one swscale call.

Only file-like inputs are accepted: bytes, a binary file object, or the path of a local file that
Python opens itself. FFmpeg never sees a URL, so no protocol can reach the network or other files.
"""

from __future__ import annotations

import io
import os
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import av
import av.container
import av.error
import numpy as np
import numpy.typing as npt
from av.stream import Discard
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from service.ingest.convert import scaled_size, to_rgb
from service.ingest.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
    DecodeTooCostlyError,
    IngestError,
    NotAVideoError,
    NoVideoStreamError,
    ResolutionTooLargeError,
    TooLargeError,
    TooLongError,
    TooManyFramesError,
    TruncatedError,
    UnsupportedCodecError,
    UnsupportedContainerError,
)
from service.ingest.sampling import Sampling, clip_duration, plan_indices, spatial_views
from service.ingest.settings import ClipLimits
from service.ingest.sniff import Sniffed, sniff

ClipSource = bytes | bytearray | memoryview | BinaryIO | str | os.PathLike[str]

# Nested opens (HLS segments, concat entries, MOV data references) must match a protocol in this
# list; no protocol has this name, so every nested open fails.
_NO_PROTOCOLS = "none"


@dataclass(frozen=True)
class ClipInfo:
    """What the index pass learned about a clip.

    Attributes:
        container: FFmpeg demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi").
        codec: Canonical codec name ("h264", "vp9"...).
        width: Coded width, before rotation.
        height: Coded height, before rotation.
        rotation: Counter-clockwise display rotation in degrees (0, 90, 180, 270).
        num_frames: Frames in the video stream.
        duration_s: Time covered by those frames.
        avg_fps: ``num_frames / duration_s``; the clip may have a variable rate.
        num_keyframes: Keyframes in the video stream.
        size_bytes: Size of the upload.
    """

    container: str
    codec: str
    width: int
    height: int
    rotation: int
    num_frames: int
    duration_s: float
    avg_fps: float
    num_keyframes: int
    size_bytes: int


@dataclass(frozen=True)
class DecodedClip:
    """Frames sampled from a clip, with what it cost.

    Attributes:
        views: ``(num_views, T, H, W, 3)`` uint8 RGB, rotation applied; views are ordered clip by
            clip, crops inside a clip.
        frame_indices: ``(num_clips, T)`` presentation-order indices of the frames taken.
        timestamps_s: ``(num_clips, T)`` their presentation times, first frame at 0.
        info: The clip's description.
        frames_decoded: Frames the decoder produced (the work done, larger than T when seeking
            lands before the wanted frame).
        seeks: Keyframe seeks made.
        decode_seconds: Wall time of the whole call.
    """

    views: npt.NDArray[np.uint8]
    frame_indices: npt.NDArray[np.int64]
    timestamps_s: npt.NDArray[np.float64]
    info: ClipInfo
    frames_decoded: int
    seeks: int
    decode_seconds: float

    @property
    def frames(self) -> npt.NDArray[np.uint8]:
        """The first view, ``(T, H, W, 3)``: the whole clip when sampling made a single view."""
        return self.views[0]


@dataclass(frozen=True)
class _Index:
    """Presentation-order timestamps (stream time base) and keyframe timestamps."""

    pts: list[int]
    keyframes: list[int]
    times_s: npt.NDArray[np.float64]


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() - self.start > self.seconds:
            raise DecodeTimeoutError(f"decoding took longer than {self.seconds:g} s")

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def probe_clip(source: ClipSource, limits: ClipLimits | None = None) -> ClipInfo:
    """Validates a clip and describes it, decoding only its first frame.

    Runs every check that does not need the sampled pixels: size, container, codec, declared
    resolution, duration, frame count and truncation; the first frame proves the stream decodes
    and carries the display rotation.

    Args:
        source: Bytes, a seekable binary file object, or a local file path.
        limits: Bounds; defaults to ``ClipLimits()``.

    Returns:
        The clip's description.

    Raises:
        IngestError: A subclass naming what was wrong.
    """
    limits = limits or ClipLimits()
    deadline = _Deadline(limits.max_decode_seconds)
    with _Opened(source, limits) as (container, vs, sniffed, size):
        info, index = _index(container, vs, sniffed, size, limits, deadline)
        _, _, _, rotation = _decode_wanted(
            container, vs, index, index.pts[:1], limits, deadline, (2, 2), allow_seek=True
        )
    return replace(info, rotation=rotation)


def decode_clip(
    source: ClipSource,
    sampling: Sampling | None = None,
    limits: ClipLimits | None = None,
    *,
    short_side: int | None = None,
    allow_seek: bool = True,
) -> DecodedClip:
    """Decodes the frames a sampling plan names.

    Args:
        source: Bytes, a seekable binary file object, or a local file path.
        sampling: The plan; defaults to 8 frames sampled uniformly, one view.
        limits: Bounds; defaults to ``ClipLimits()``.
        short_side: Resize so the shorter displayed side has this many pixels, inside the same
            swscale pass that converts to RGB; ``None`` keeps the coded size.
        allow_seek: Seek to the keyframe before a wanted frame when that skips decoding; when
            false, every frame up to the last wanted one is decoded.

    Returns:
        The frames and what they cost.

    Raises:
        IngestError: A subclass naming what was wrong. No other exception escapes for bad input.
    """
    sampling = sampling or Sampling()
    limits = limits or ClipLimits()
    deadline = _Deadline(limits.max_decode_seconds)
    with _Opened(source, limits) as (container, vs, sniffed, size):
        info, index = _index(container, vs, sniffed, size, limits, deadline)
        plan = plan_indices(index.times_s, sampling)  # (clips, T)
        wanted = sorted({index.pts[i] for i in plan.ravel().tolist()})
        out_size = scaled_size(info.width, info.height, short_side)
        decoded, frames_decoded, seeks, rotation = _decode_wanted(
            container, vs, index, wanted, limits, deadline, out_size, allow_seek
        )
    info = replace(info, rotation=rotation)
    clips = np.stack(
        [np.stack([decoded[index.pts[i]] for i in row]) for row in plan.tolist()]
    )  # (clips, T, H, W, 3)
    clips = _rotate(clips, info.rotation)
    if sampling.num_crops > 1:
        views = np.concatenate([spatial_views(c, sampling.num_crops) for c in clips])
    else:
        views = clips
    return DecodedClip(
        views=np.ascontiguousarray(views),
        frame_indices=plan,
        timestamps_s=index.times_s[plan],
        info=info,
        frames_decoded=frames_decoded,
        seeks=seeks,
        decode_seconds=deadline.elapsed(),
    )


class _Opened:
    """Context manager: size check, sniffing and a safely opened container with its video stream."""

    def __init__(self, source: ClipSource, limits: ClipLimits) -> None:
        self._source = source
        self._limits = limits
        self._owned: BinaryIO | None = None
        self._container: av.container.InputContainer | None = None

    def __enter__(self) -> tuple[av.container.InputContainer, VideoStream, Sniffed, int]:
        try:
            fileobj, size = self._file(self._source)
            if size > self._limits.max_bytes:
                raise TooLargeError(
                    f"the upload has {size} bytes; at most {self._limits.max_bytes} are accepted"
                )
            head = fileobj.read(512)
            fileobj.seek(0)
            sniffed = sniff(head)
            self._container = _open_container(fileobj, sniffed, self._limits)
            vs = _video_stream(self._container, sniffed)
            _check_stream(vs, self._limits)
            return self._container, vs, sniffed, size
        except BaseException:
            self._close()
            raise

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
        if self._owned is not None:
            self._owned.close()

    def _file(self, source: ClipSource) -> tuple[BinaryIO, int]:
        if isinstance(source, bytes | bytearray | memoryview):
            return io.BytesIO(source), len(source)
        if isinstance(source, str | os.PathLike):
            # Python opens the path, so FFmpeg gets a file object and never interprets a URL.
            self._owned = Path(source).open("rb")  # noqa: SIM115 (closed in _close)
            return self._owned, os.fstat(self._owned.fileno()).st_size
        if not source.seekable():
            raise ValueError("a clip file object must be seekable")
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        return source, size


def _open_container(
    fileobj: BinaryIO, sniffed: Sniffed, limits: ClipLimits
) -> av.container.InputContainer:
    options = {
        "format_whitelist": ",".join(sorted(limits.formats)),
        "protocol_whitelist": _NO_PROTOCOLS,
        # PyAV hands these options to the decoders that probe the streams too: a frame header
        # declaring a huge picture fails there instead of allocating it.
        "max_pixels": str(limits.max_pixels),
    }
    if sniffed.kind == "empty":
        raise NotAVideoError("the upload is empty")
    try:
        return av.open(fileobj, mode="r", options=options)
    except av.error.FFmpegError as exc:
        raise _open_error(sniffed, exc) from exc


def _open_error(sniffed: Sniffed, exc: av.error.FFmpegError) -> IngestError:
    if sniffed.kind == "video":
        return TruncatedError(
            f"the {sniffed.name} file is incomplete or its header is damaged ({exc.strerror})"
        )
    if sniffed.kind == "other_video":
        return UnsupportedContainerError(
            f"{sniffed.name} files are not accepted; send MP4, MOV, MKV, WebM or AVI"
        )
    if sniffed.kind in ("image", "audio"):
        return NotAVideoError(f"the upload is a {sniffed.name}, not a video")
    if sniffed.kind == "playlist":
        return NotAVideoError("playlists and file lists are not accepted; send the video itself")
    return NotAVideoError("the upload is not a video file (MP4, MOV, MKV, WebM or AVI)")


def _video_stream(container: av.container.InputContainer, sniffed: Sniffed) -> VideoStream:
    if container.streams.video:
        vs = container.streams.video[0]
        # Only the video stream is demuxed; audio packets are skipped unread by the decoder.
        for stream in container.streams:
            if stream is not vs:
                stream.discard = Discard.all
        return vs
    media = [s for s in container.streams if s.type in ("audio", "subtitle")]
    if not media and sniffed.kind == "video":
        # A header that ends inside its track list leaves no track, or a half-read one.
        raise TruncatedError(f"the {sniffed.name} file is incomplete: its track list is cut short")
    kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "nothing"
    raise NoVideoStreamError(f"the file holds no video stream (it has {kinds})")


def _check_stream(vs: VideoStream, limits: ClipLimits) -> None:
    codec_ctx = vs.codec_context
    if codec_ctx is None:
        raise UnsupportedCodecError("the video codec cannot be decoded here")
    name = codec_ctx.codec.canonical_name
    if name not in limits.codecs:
        allowed = ", ".join(sorted(limits.codecs))
        raise UnsupportedCodecError(f"video codec {name!r} is not accepted; accepted: {allowed}")
    _check_resolution(codec_ctx.width, codec_ctx.height, limits)
    # The same bound for the decoder that produces the frames, should the size change mid-stream.
    codec_ctx.options = {"max_pixels": str(limits.max_pixels)}


def _check_resolution(width: int, height: int, limits: ClipLimits) -> None:
    if width <= 0 or height <= 0:
        # FFmpeg zeroes a size its decoder refuses (ff_set_dimensions): with max_pixels set from
        # the limits, that is a declared size beyond the limit.
        raise ResolutionTooLargeError(
            f"the video stream declares no usable frame size: beyond the limit of "
            f"{limits.max_pixels} pixels, or none at all"
        )
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise ResolutionTooLargeError(
            f"frames of {width}x{height} exceed the limit of {limits.max_width}x"
            f"{limits.max_height} and {limits.max_pixels} pixels"
        )


def _index(
    container: av.container.InputContainer,
    vs: VideoStream,
    sniffed: Sniffed,
    size: int,
    limits: ClipLimits,
    deadline: _Deadline,
) -> tuple[ClipInfo, _Index]:
    tb = vs.time_base
    if tb is None or tb <= 0:
        raise CorruptVideoError("the video stream has no time base")
    _check_declared_duration(container, vs, limits)
    pts: list[int] = []
    keyframes: list[int] = []
    beyond_end = False
    max_ticks = limits.max_duration_s / float(tb)
    codec_ctx = vs.codec_context
    frame_pixels = max(codec_ctx.width * codec_ctx.height, 1)
    max_indexed = limits.max_pixel_frames // frame_pixels  # more frames than this cost too much
    try:
        for packet in container.demux(vs):
            deadline.check()
            if packet.size == 0:
                continue  # the flush packet at the end of the stream
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                raise CorruptVideoError("a video packet has no timestamp")
            pts.append(stamp)
            if packet.is_keyframe:
                keyframes.append(stamp)
            if packet.pos is not None and packet.pos >= 0 and packet.pos + packet.size > size:
                beyond_end = True
            if len(pts) > limits.max_frames:
                raise TooManyFramesError(f"the clip has more than {limits.max_frames} frames")
            if len(pts) > max_indexed:
                raise _too_costly(len(pts), codec_ctx.width, codec_ctx.height, limits)
            if stamp - pts[0] > max_ticks:
                raise TooLongError(f"the clip lasts longer than {limits.max_duration_s:g} s")
    except av.error.FFmpegError as exc:
        raise TruncatedError(f"the file ends inside a frame ({exc.strerror})") from exc
    if not pts:
        raise TruncatedError("the video stream has no frames: the file was cut short")
    pts.sort()
    if len(set(pts)) != len(pts):
        raise CorruptVideoError("several video frames share one timestamp")
    keyframes.sort()
    if not keyframes or keyframes[0] > pts[0]:
        # Some demuxers do not flag the first packet; decoding always starts from the first one.
        keyframes.insert(0, pts[0])
    times_s = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(tb)
    duration = clip_duration(times_s)
    if duration > limits.max_duration_s:
        raise TooLongError(f"the clip lasts {duration:.1f} s; at most {limits.max_duration_s:g} s")
    if (
        beyond_end
        or (vs.frames > 0 and len(pts) < vs.frames)
        or _short_of_declared(container, vs, duration)
    ):
        raise TruncatedError(
            f"the file was cut short: {len(pts)} frames ({duration:.2f} s) are present of the "
            f"{_declared_text(container, vs)} it declares"
        )
    info = ClipInfo(
        container=container.format.name,
        codec=codec_ctx.codec.canonical_name,
        width=codec_ctx.width,
        height=codec_ctx.height,
        rotation=0,
        num_frames=len(pts),
        duration_s=duration,
        avg_fps=len(pts) / duration if duration > 0 else 0.0,
        num_keyframes=len(keyframes),
        size_bytes=size,
    )
    return info, _Index(pts=pts, keyframes=keyframes, times_s=times_s)


def _too_costly(frames: int, width: int, height: int, limits: ClipLimits) -> DecodeTooCostlyError:
    return DecodeTooCostlyError(
        f"the clip holds {frames} or more frames of {width}x{height}, over the decode limit of "
        f"{limits.max_pixel_frames} pixels times frames; send fewer or smaller frames"
    )


def _declared_duration_s(container: av.container.InputContainer, vs: VideoStream) -> float | None:
    if vs.duration is not None and vs.duration > 0 and vs.time_base is not None:
        return float(vs.duration * vs.time_base)
    # The container's duration also covers other tracks; trust it only when video is alone.
    if container.duration is not None and container.duration > 0 and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _check_declared_duration(
    container: av.container.InputContainer, vs: VideoStream, limits: ClipLimits
) -> None:
    declared = _declared_duration_s(container, vs)
    if declared is not None and declared > limits.max_duration_s:
        raise TooLongError(f"the clip lasts {declared:.1f} s; at most {limits.max_duration_s:g} s")


def _short_of_declared(
    container: av.container.InputContainer, vs: VideoStream, duration: float
) -> bool:
    declared = _declared_duration_s(container, vs)
    if declared is None:
        return False
    # Allow rounding and a missing last-frame duration, but not a missing tail.
    return duration < declared * 0.9 - 0.1


def _declared_text(container: av.container.InputContainer, vs: VideoStream) -> str:
    declared = _declared_duration_s(container, vs)
    parts = []
    if vs.frames > 0:
        parts.append(f"{vs.frames} frames")
    if declared is not None:
        parts.append(f"{declared:.2f} s")
    return " / ".join(parts) or "length"


def _decode_wanted(
    container: av.container.InputContainer,
    vs: VideoStream,
    index: _Index,
    wanted: list[int],
    limits: ClipLimits,
    deadline: _Deadline,
    out_size: tuple[int, int] | None,
    allow_seek: bool,
) -> tuple[dict[int, npt.NDArray[np.uint8]], int, int, int]:
    """Decodes the frames whose timestamps are in ``wanted`` (sorted).

    Returns:
        Frames by timestamp, frames decoded, seeks made, and the display rotation (degrees
        counter-clockwise, normalised to 0/90/180/270), which FFmpeg attaches to every frame.
    """
    got: dict[int, npt.NDArray[np.uint8]] = {}
    pending = list(wanted)
    decoded = 0
    work = 0  # pixels times frames decoded so far
    seeks = 0
    frames: Iterator[VideoFrame] | None = None
    last_pts: int | None = None
    rotation = 0
    try:
        while pending:
            target = pending[0]
            key = index.keyframes[bisect_right(index.keyframes, target) - 1]
            # Seek when the wanted frame's keyframe lies ahead: decoding up to it is wasted work.
            if frames is None or (allow_seek and last_pts is not None and key > last_pts):
                start = key if allow_seek else index.pts[0]
                container.seek(start, stream=vs, backward=True, any_frame=False)
                frames = iter(container.decode(vs))
                seeks += 1
            frame = next(frames, None)
            deadline.check()
            if frame is None:
                break
            decoded += 1
            if decoded > limits.max_frames:
                raise TooManyFramesError(f"more than {limits.max_frames} frames were decoded")
            _check_resolution(frame.width, frame.height, limits)
            work += frame.width * frame.height
            if work > limits.max_pixel_frames:
                raise DecodeTooCostlyError(
                    f"decoding passed {limits.max_pixel_frames} pixels times frames after "
                    f"{decoded} frames; send fewer frames or smaller ones"
                )
            stamp = frame.pts
            if stamp is None:
                raise CorruptVideoError("a decoded frame has no timestamp")
            last_pts = stamp
            rotation = round(frame.rotation / 90) % 4 * 90
            # A frame past a wanted one that never came (a lossy seek) stands in for it.
            while pending and pending[0] <= stamp:
                got[pending.pop(0)] = to_rgb(frame, out_size)
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"the video data does not decode ({exc.strerror})") from exc
    if pending:
        raise CorruptVideoError(
            f"{len(pending)} of the clip's frames could not be decoded; the stream is damaged"
        )
    return got, decoded, seeks, rotation


def _rotate(clips: npt.NDArray[np.uint8], rotation: int) -> npt.NDArray[np.uint8]:
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns == 0:
        return clips
    # Axes 2, 3 are (H, W) of (clips, T, H, W, 3); positive turns are counter-clockwise, as the
    # display matrix's angle is.
    return np.rot90(clips, k=quarter_turns, axes=(2, 3))
