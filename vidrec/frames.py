"""Frames for a live stream, as the bytes the server takes (JPEG, PNG or WebP images).

numpy, Pillow and PyAV are imported when a function needs them, so ``import vidrec`` stays light.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

JPEG_QUALITY = 90

Frame = bytes | bytearray | memoryview | str | PathLike[str] | Any
"""What ``LiveStream.send`` takes: encoded image bytes, the path of an image file, an
``(H, W, 3)`` uint8 RGB numpy array, or a PIL image."""


def encode_jpeg(image: Any, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 RGB array or a PIL image.

    Raises:
        ValueError: An array of another shape or dtype.
    """
    from PIL import Image

    if not isinstance(image, Image.Image):
        import numpy as np

        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(
                f"a frame array must be (H, W, 3) uint8 RGB, got {array.shape} {array.dtype}"
            )
        image = Image.fromarray(array, mode="RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def frame_bytes(frame: Frame) -> bytes:
    """The bytes to send for ``frame`` (see :data:`Frame`)."""
    if isinstance(frame, bytes | bytearray | memoryview):
        return bytes(frame)
    if isinstance(frame, str | PathLike):
        return Path(frame).read_bytes()
    return encode_jpeg(frame)


def _scaled(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    if short_side is None or min(width, height) == short_side:
        return None
    scale = short_side / min(width, height)
    # Even sides, as the encoders downstream prefer.
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _jpegs(container: Any, short_side: int | None, max_frames: int | None) -> Iterator[bytes]:
    if not container.streams.video:
        raise ValueError("the input holds no video stream")
    for count, frame in enumerate(container.decode(container.streams.video[0]), 1):
        size = _scaled(frame.width, frame.height, short_side)
        if size is not None:
            frame = frame.reformat(width=size[0], height=size[1])
        yield encode_jpeg(frame.to_image())
        if max_frames is not None and count >= max_frames:
            return


def video_frames(
    path: str | PathLike[str], *, short_side: int | None = None, max_frames: int | None = None
) -> Iterator[bytes]:
    """Each frame of a video file as JPEG bytes, in order, none dropped.

    Python opens the file and FFmpeg reads the file object, so a name is never taken for a URL.

    Args:
        path: The video file.
        short_side: Resize to this short side first (the server scales frames anyway; smaller
            frames travel faster).
        max_frames: Stop after this many.

    Raises:
        ValueError: Not a video.
    """
    import av
    import av.error

    with Path(path).open("rb") as handle:
        try:
            container = av.open(handle, mode="r")
        except av.error.FFmpegError as exc:
            raise ValueError(f"cannot read {path} as a video: {exc}") from exc
        with container:
            yield from _jpegs(container, short_side, max_frames)


def camera_frames(
    device: str = "/dev/video0",
    *,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
) -> Iterator[bytes]:
    """Frames of a V4L2 camera (Linux) as JPEG bytes, read through PyAV's ``v4l2`` input.

    Args:
        device: The camera's device file.
        fps: Frame rate to ask the camera for; ``None``: its default.
        size: ``(width, height)`` to ask the camera for; ``None``: its default.
        short_side: Resize to this short side before encoding.
        max_frames: Stop after this many.
    """
    import av

    options: dict[str, str] = {}
    if fps is not None:
        options["framerate"] = f"{fps:g}"
    if size is not None:
        options["video_size"] = f"{size[0]}x{size[1]}"
    with av.open(device, format="v4l2", options=options) as container:
        yield from _jpegs(container, short_side, max_frames)
