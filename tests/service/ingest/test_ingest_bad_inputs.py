"""A corpus of bad uploads: each fails with its own typed error, quickly, and harms nothing else."""

from __future__ import annotations

import io
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ingest_media import UNIFORM_30_8, audio_only, clip_bytes, read_marks, write_clip
from PIL import Image

from service.ingest import ClipLimits, IngestError, Sampling, decode_clip, probe_clip
from service.ingest.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
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

# Tight enough that a hang would show, loose enough for a loaded 2-core machine.
LIMITS = ClipLimits(max_decode_seconds=10.0)


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _faststart_mp4(tmp: Path) -> bytes:
    path = tmp / "faststart.mp4"
    write_clip(path, "mp4", "h264", options={"movflags": "faststart"})
    return path.read_bytes()


def _absurd_avi(container: bool = True) -> bytes:
    # Rewrite an MJPEG AVI so that every JPEG frame header (SOF0) declares 20000x20000 pixels,
    # and, with ``container``, the AVI headers too.
    data = bytearray(clip_bytes("avi", "mjpeg", num_frames=3))
    sof = data.find(b"\xff\xc0")
    while sof >= 0:
        struct.pack_into(">HH", data, sof + 5, 20000, 20000)
        sof = data.find(b"\xff\xc0", sof + 2)
    if container:
        strf = data.find(b"strf")
        struct.pack_into("<ii", data, strf + 12, 20000, 20000)
        avih = data.find(b"avih")
        struct.pack_into("<ii", data, avih + 8 + 32, 20000, 20000)
    return bytes(data)


def _hour_long() -> bytes:
    # Two frames an hour apart: a tiny file that declares a very long clip.
    return clip_bytes("matroska", "h264", pts_ms=[0, 3_600_000])


def _playlist(target: Path) -> bytes:
    return (
        f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\nfile://{target}\n#EXT-X-ENDLIST\n".encode()
    )


def _concat(target: Path) -> bytes:
    return f"ffconcat version 1.0\nfile '{target}'\n".encode()


BadCase = Callable[[Path], bytes]

CORPUS: list[tuple[str, BadCase, type[IngestError]]] = [
    ("empty", lambda _: b"", NotAVideoError),
    ("random bytes", lambda _: np.random.default_rng(0).bytes(20_000), NotAVideoError),
    ("text", lambda _: b"hello, this is not a video\n" * 20, NotAVideoError),
    ("png renamed", lambda _: _image("PNG"), NotAVideoError),
    ("jpeg renamed", lambda _: _image("JPEG"), NotAVideoError),
    ("hls playlist", lambda tmp: _playlist(tmp / "target.mp4"), NotAVideoError),
    ("concat list", lambda tmp: _concat(tmp / "target.mp4"), NotAVideoError),
    ("mpeg-ts", lambda _: clip_bytes("mpegts", "h264"), UnsupportedContainerError),
    ("audio only mkv", lambda _: audio_only("matroska", "flac"), NoVideoStreamError),
    ("audio only mp4", lambda _: audio_only("mp4", "aac"), NoVideoStreamError),
    ("mp4 header cut", lambda tmp: _faststart_mp4(tmp)[:100], TruncatedError),
    ("mp4 cut in the moov", lambda tmp: _faststart_mp4(tmp)[:600], TruncatedError),
    ("mp4 cut in the middle", lambda tmp: _faststart_mp4(tmp)[:-1500], TruncatedError),
    ("mp4 without its trailing moov", lambda _: clip_bytes("mp4", "h264")[:-900], TruncatedError),
    ("mkv header cut", lambda _: clip_bytes("matroska", "h264")[:200], TruncatedError),
    ("mkv cut in the middle", lambda _: _half(clip_bytes("matroska", "vp9")), TruncatedError),
    ("webm cut in the middle", lambda _: _half(clip_bytes("webm", "vp9")), TruncatedError),
    ("avi header cut", lambda _: clip_bytes("avi", "mjpeg")[:200], TruncatedError),
    ("avi cut in the middle", lambda _: _half(clip_bytes("avi", "mjpeg")), TruncatedError),
    ("absurd declared resolution", lambda _: _absurd_avi(), ResolutionTooLargeError),
    ("frames larger than the container says", lambda _: _absurd_avi(False), CorruptVideoError),
    ("an hour long", lambda _: _hour_long(), TooLongError),
    (
        "raw video in avi",
        lambda _: clip_bytes("avi", "rawvideo", pix_fmt="rgb24"),
        UnsupportedCodecError,
    ),
]


def _raw_avi() -> bytes:
    return clip_bytes("avi", "rawvideo", pix_fmt="rgb24")


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(("case", "make", "error"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_upload_gives_its_typed_error(
    case: str, make: BadCase, error: type[IngestError], tmp_path: Path
) -> None:
    target = tmp_path / "target.mp4"
    write_clip(target, "mp4", "h264")
    data = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(error) as caught:
        decode_clip(data, limits=LIMITS)
    assert time.monotonic() - started < LIMITS.max_decode_seconds
    assert 400 <= caught.value.http_status < 500
    assert caught.value.to_dict() == {"error": error.code, "message": caught.value.message}
    assert caught.value.message
    # probe_clip runs the same checks without sampling.
    with pytest.raises(error):
        probe_clip(data, limits=LIMITS)


def test_image_renamed_mp4_on_disk_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "holiday.mp4"
    path.write_bytes(_image("PNG"))
    with pytest.raises(NotAVideoError, match="PNG image"):
        decode_clip(path)


def test_playlist_reference_is_never_followed(tmp_path: Path) -> None:
    # The referenced file is a valid clip: following the reference would have decoded it.
    target = tmp_path / "target.mp4"
    write_clip(target, "mp4", "h264")
    for data in (_playlist(target), _concat(target)):
        with pytest.raises(NotAVideoError, match="playlist"):
            decode_clip(data)


def test_path_argument_is_a_local_path_not_a_url() -> None:
    with pytest.raises(FileNotFoundError):
        decode_clip("http://127.0.0.1:9/clip.mp4")


def test_too_many_bytes_is_refused_before_opening(h264_mp4: bytes) -> None:
    with pytest.raises(TooLargeError, match=f"{len(h264_mp4)} bytes"):
        decode_clip(h264_mp4, limits=ClipLimits(max_bytes=len(h264_mp4) - 1))


def test_resolution_limit_is_configurable(h264_mp4: bytes) -> None:
    for limits in (
        ClipLimits(max_width=63),
        ClipLimits(max_height=47),
        ClipLimits(max_pixels=3071),
    ):
        with pytest.raises(ResolutionTooLargeError, match="64x48"):
            decode_clip(h264_mp4, limits=limits)


def test_duration_limit_is_checked_on_the_index(h264_mp4: bytes) -> None:
    with pytest.raises(TooLongError):
        decode_clip(h264_mp4, limits=ClipLimits(max_duration_s=2.5))


def test_frame_limit_counts_the_whole_clip() -> None:
    data = clip_bytes("matroska", "h264", num_frames=120, width=16, height=16)
    with pytest.raises(TooManyFramesError, match="more than 100 frames"):
        decode_clip(data, limits=ClipLimits(max_frames=100))


def test_codec_whitelist_is_configurable(h264_mp4: bytes) -> None:
    with pytest.raises(UnsupportedCodecError, match="'h264'"):
        decode_clip(h264_mp4, limits=ClipLimits(codecs=frozenset({"vp9"})))


def test_container_whitelist_is_configurable(h264_mp4: bytes) -> None:
    with pytest.raises(TruncatedError):
        # The MP4 demuxer is not allowed, so the MP4-looking file cannot be opened.
        decode_clip(h264_mp4, limits=ClipLimits(formats=frozenset({"matroska", "webm"})))
    webm = clip_bytes("webm", "vp9")
    clip = decode_clip(webm, limits=ClipLimits(formats=frozenset({"matroska", "webm"})))
    assert read_marks(clip.frames) == UNIFORM_30_8


def test_decode_wall_time_limit() -> None:
    data = clip_bytes("mp4", "h264", num_frames=60)
    with pytest.raises(DecodeTimeoutError, match="longer than"):
        decode_clip(data, limits=ClipLimits(max_decode_seconds=1e-9))


def test_damaged_payloads_fail_typed_or_decode() -> None:
    # Bytes overwritten inside the frame data: the decoder may conceal the damage or refuse it,
    # but nothing other than an IngestError may escape, and no call may hang.
    good = clip_bytes("mp4", "h264", num_frames=30, gop_size=10)
    rng = np.random.default_rng(1)
    outcomes: dict[str, int] = {}
    for _ in range(25):
        data = bytearray(good)
        start = int(rng.integers(48, len(good) - 1200))
        data[start : start + 64] = rng.bytes(64)
        try:
            clip = decode_clip(bytes(data), Sampling(num_frames=8), limits=LIMITS)
            assert clip.frames.shape == (8, 48, 64, 3)
            outcomes["decoded"] = outcomes.get("decoded", 0) + 1
        except IngestError as exc:
            outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
    assert sum(outcomes.values()) == 25
    # The process is unharmed: the original still decodes exactly.
    assert read_marks(decode_clip(good).frames) == UNIFORM_30_8


def test_a_hostile_upload_fails_only_its_own_call(h264_mp4: bytes) -> None:
    results: dict[str, object] = {}

    def run(name: str, data: bytes) -> None:
        try:
            results[name] = read_marks(decode_clip(data).frames)
        except IngestError as exc:
            results[name] = exc.code

    threads = [
        threading.Thread(target=run, args=("bad", _absurd_avi())),
        threading.Thread(target=run, args=("good", h264_mp4)),
        threading.Thread(target=run, args=("random", np.random.default_rng(2).bytes(5000))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {
        "bad": "resolution_too_large",
        "good": UNIFORM_30_8,
        "random": "not_a_video",
    }


def test_unseekable_file_object_is_a_programming_error() -> None:
    class Pipe(io.RawIOBase):
        def seekable(self) -> bool:
            return False

    with pytest.raises(ValueError, match="seekable"):
        decode_clip(Pipe())  # type: ignore[arg-type]


def test_corrupt_error_is_an_ingest_error() -> None:
    assert issubclass(CorruptVideoError, IngestError)
    assert CorruptVideoError("x").to_dict() == {"error": "corrupt", "message": "x"}
