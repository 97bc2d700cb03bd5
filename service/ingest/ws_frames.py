"""Decoding live frames sent as binary WebSocket messages.

A message is an optional one-line JSON header, then a JPEG, PNG or WebP image::

    {"timestamp": 12.04, "index": 301}\\n<image bytes>

or just the image bytes. Images start with a byte other than ``{``, so the header is recognised
without a length prefix. A bad message raises an :class:`IngestError` subclass; the gateway reports
it to the client and goes on with the next message.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from service.ingest.errors import FrameTooLargeError, MalformedFrameError, UnsupportedImageError
from service.ingest.settings import FrameLimits
from service.ingest.sniff import sniff

ImageFormat = Literal["jpeg", "png", "webp"]

# Pillow format names, so only these three decoders are ever tried.
_PIL_FORMATS: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class FrameHeader:
    """The optional JSON header of a frame message.

    Attributes:
        timestamp_s: Capture time in seconds on the client's clock.
        index: The client's frame counter.
    """

    timestamp_s: float | None = None
    index: int | None = None


@dataclass(frozen=True)
class WsFrame:
    """One decoded frame.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.
        format: The image format that was sent.
        header: The header, empty when none was sent.
    """

    image: npt.NDArray[np.uint8]
    format: ImageFormat
    header: FrameHeader


def split_message(
    message: bytes | bytearray | memoryview, limits: FrameLimits | None = None
) -> tuple[FrameHeader, bytes]:
    """Separates and validates the header; the image bytes are returned undecoded.

    A gateway can call this first to learn the frame index it will report a bad image under.

    Raises:
        FrameTooLargeError: The message or its header is over the byte limits.
        MalformedFrameError: The header is not a one-line JSON object of the expected fields.
    """
    limits = limits or FrameLimits()
    data = bytes(message)
    if len(data) > limits.max_bytes:
        raise FrameTooLargeError(
            f"the frame has {len(data)} bytes; at most {limits.max_bytes} are accepted"
        )
    if not data.startswith(b"{"):
        return FrameHeader(), data
    end = data.find(b"\n", 0, limits.max_header_bytes + 1)
    if end < 0:
        raise MalformedFrameError(
            f"the frame header must be one JSON line of at most {limits.max_header_bytes} bytes"
        )
    return _parse_header(data[:end]), data[end + 1 :]


def _parse_header(raw: bytes) -> FrameHeader:
    try:
        fields = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedFrameError(f"the frame header is not valid JSON: {exc}") from exc
    timestamp = fields.get("timestamp")
    index = fields.get("index")
    # bool is an int to Python, and never a timestamp or a counter.
    if timestamp is not None and (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
    ):
        raise MalformedFrameError("the header's timestamp must be a finite number of seconds")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise MalformedFrameError("the header's index must be a non-negative integer")
    return FrameHeader(
        timestamp_s=None if timestamp is None else float(timestamp),
        index=index,
    )


def decode_image(
    data: bytes, limits: FrameLimits | None = None, short_side: int | None = None
) -> tuple[npt.NDArray[np.uint8], ImageFormat]:
    """Decodes a JPEG, PNG or WebP image to RGB after checking its declared size.

    Args:
        data: The encoded image.
        limits: Bounds; defaults to ``FrameLimits()``.
        short_side: A JPEG larger than this on its short side is decoded at a reduced scale
            (1/2, 1/4 or 1/8: Pillow's draft mode, which skips most of the inverse DCT) that
            keeps its short side at least this long: the model resizes to it anyway, and a
            640x480 frame then costs a fraction of a full decode. ``None``: full size.

    Raises:
        UnsupportedImageError: The bytes are not one of the three formats.
        FrameTooLargeError: The declared size is over the resolution limits (checked before any
            pixel is decoded).
        MalformedFrameError: The image data is damaged or truncated.
    """
    limits = limits or FrameLimits()
    fmt = _image_format(data)
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as img:
            width, height = img.size
            if (
                width > limits.max_width
                or height > limits.max_height
                or width * height > limits.max_pixels
            ):
                raise FrameTooLargeError(
                    f"the image is {width}x{height}; at most {limits.max_width}x"
                    f"{limits.max_height} and {limits.max_pixels} pixels are accepted"
                )
            if short_side is not None and fmt == "jpeg" and min(width, height) > short_side:
                scale = short_side / min(width, height)
                img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = upright.convert("RGB")
    except Image.DecompressionBombError as exc:
        # Pillow refuses, while opening, sizes far beyond its own bomb limit.
        raise FrameTooLargeError(f"the image declares too many pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MalformedFrameError(f"the {fmt.upper()} image does not decode: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8), fmt


def decode_ws_frame(
    message: bytes | bytearray | memoryview,
    limits: FrameLimits | None = None,
    short_side: int | None = None,
) -> WsFrame:
    """Decodes one binary WebSocket message into a frame.

    Args:
        message: The message: optional JSON header line, then the image.
        limits: Bounds; defaults to ``FrameLimits()``.
        short_side: Decode a large JPEG only down to this short side (see
            :func:`decode_image`).

    Returns:
        The frame.

    Raises:
        FrameTooLargeError, UnsupportedImageError, MalformedFrameError: See
            :func:`split_message` and :func:`decode_image`.
    """
    header, data = split_message(message, limits)
    image, fmt = decode_image(data, limits, short_side)
    return WsFrame(image=image, format=fmt, header=header)


def _image_format(data: bytes) -> ImageFormat:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if not data:
        raise MalformedFrameError("the frame holds no image")
    seen = sniff(data[:512])
    what = f" (it looks like {seen.name})" if seen.name else ""
    raise UnsupportedImageError(f"frames must be JPEG, PNG or WebP images{what}")
