"""WebSocket frame messages: images, the optional header, and every way a message can be bad."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from service.ingest.errors import (
    FrameTooLargeError,
    IngestError,
    MalformedFrameError,
    UnsupportedImageError,
)
from service.ingest.settings import FrameLimits
from service.ingest.ws_frames import FrameHeader, decode_ws_frame, split_message


def _picture(height: int = 40, width: int = 60) -> np.ndarray:
    rng = np.random.default_rng(3)
    # Smooth content so lossy codecs stay close to it.
    base = rng.integers(0, 255, (height // 10 + 1, width // 10 + 1, 3)).astype(np.uint8)
    return np.kron(base, np.ones((10, 10, 1), np.uint8))[:height, :width]


def _encode(array: np.ndarray, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "name", "tolerance"), [("PNG", "png", 0), ("JPEG", "jpeg", 12), ("WEBP", "webp", 12)]
)
def test_images_decode_to_rgb(fmt: str, name: str, tolerance: int) -> None:
    picture = _picture()
    frame = decode_ws_frame(
        _encode(picture, fmt, quality=95) if fmt != "PNG" else _encode(picture, fmt)
    )
    assert frame.format == name
    assert frame.image.shape == (40, 60, 3)
    assert frame.image.dtype == np.uint8
    assert np.abs(frame.image.astype(int) - picture.astype(int)).mean() <= tolerance
    assert frame.header == FrameHeader()


def test_a_large_jpeg_decodes_only_down_to_the_short_side_asked() -> None:
    picture = _picture(480, 640)
    jpeg = _encode(picture, "JPEG", quality=95)
    assert decode_ws_frame(jpeg).image.shape == (480, 640, 3)
    # 1/4 keeps the short side at 120 >= 112; 1/8 (60) would not.
    small = decode_ws_frame(jpeg, short_side=112).image
    assert small.shape == (120, 160, 3)
    shrunk = np.asarray(Image.fromarray(picture).resize((160, 120), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - shrunk.astype(int)).mean() <= 12  # the same picture
    assert decode_ws_frame(jpeg, short_side=480).image.shape == (480, 640, 3)
    # Only JPEG has a reduced-scale decode; a frame already small enough is left as it is.
    assert decode_ws_frame(_encode(picture, "PNG"), short_side=112).image.shape == (480, 640, 3)
    assert decode_ws_frame(_encode(_picture(), "JPEG"), short_side=112).image.shape == (40, 60, 3)


def test_header_line_is_parsed() -> None:
    header = json.dumps({"timestamp": 12.5, "index": 301, "client": "ignored"}).encode()
    image = _encode(_picture(), "PNG")
    frame = decode_ws_frame(header + b"\n" + image)
    assert frame.header == FrameHeader(timestamp_s=12.5, index=301)
    np.testing.assert_array_equal(frame.image, _picture())
    only_index = decode_ws_frame(b'{"index": 0}\n' + image)
    assert only_index.header == FrameHeader(timestamp_s=None, index=0)


def test_split_message_gives_the_index_before_the_image_is_decoded() -> None:
    header, rest = split_message(b'{"index": 7}\nnot an image')
    assert header.index == 7
    assert rest == b"not an image"
    with pytest.raises(UnsupportedImageError):
        decode_ws_frame(b'{"index": 7}\nnot an image')


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"index": -1}', "non-negative"),
        (b'{"index": 1.5}', "non-negative"),
        (b'{"index": true}', "non-negative"),
        (b'{"index": "3"}', "non-negative"),
        (b'{"timestamp": "now"}', "finite number"),
        (b'{"timestamp": NaN}', "finite number"),
        (b'{"timestamp": Infinity}', "finite number"),
        (b'{"timestamp": false}', "finite number"),
        (b'{"index": 1}\xff\xfe', "not valid JSON"),
    ],
)
def test_malformed_headers(header: bytes, words: str) -> None:
    with pytest.raises(MalformedFrameError, match=words):
        decode_ws_frame(header + b"\n" + _encode(_picture(), "PNG"))


def test_header_without_newline_or_too_long() -> None:
    image = _encode(_picture(), "PNG")
    with pytest.raises(MalformedFrameError, match="one JSON line"):
        decode_ws_frame(b'{"index": 1}' + b"x" * 2000)
    # The PNG signature holds a newline: the header then ends inside the image, and is not JSON.
    with pytest.raises(MalformedFrameError, match="not valid JSON"):
        decode_ws_frame(b'{"index": 1}' + image)
    long_header = json.dumps({"index": 1, "pad": "x" * 2000}).encode()
    with pytest.raises(MalformedFrameError, match="at most 1024 bytes"):
        decode_ws_frame(long_header + b"\n" + image)


def test_byte_limit() -> None:
    image = _encode(_picture(), "PNG")
    limits = FrameLimits(max_bytes=len(image) - 1)
    with pytest.raises(FrameTooLargeError, match=f"{len(image)} bytes") as caught:
        decode_ws_frame(image, limits)
    assert caught.value.http_status == 413
    assert decode_ws_frame(image, FrameLimits(max_bytes=len(image))).image.shape == (40, 60, 3)


def _png_header_only(width: int, height: int) -> bytes:
    # A PNG that declares a huge picture and holds a few bytes of data: a decompression bomb.
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_declared_resolution_is_checked_before_decoding() -> None:
    with pytest.raises(FrameTooLargeError, match="too many pixels"):
        decode_ws_frame(_png_header_only(60000, 60000))
    # Under Pillow's own bomb limit, over ours: refused on the declared size.
    with pytest.raises(FrameTooLargeError, match="5000x5000"):
        decode_ws_frame(_png_header_only(5000, 5000))
    with pytest.raises(FrameTooLargeError, match="1921x10"):
        decode_ws_frame(_encode(np.zeros((10, 1921, 3), np.uint8), "PNG"))
    small = FrameLimits(max_width=100, max_height=100, max_pixels=2000)
    with pytest.raises(FrameTooLargeError, match="60x40"):
        decode_ws_frame(_encode(_picture(), "PNG"), small)


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", MalformedFrameError, "no image"),
        (b'{"index": 1}\n', MalformedFrameError, "no image"),
        (bytes(range(256)), UnsupportedImageError, "JPEG, PNG or WebP"),
        (b"GIF89a" + b"\x00" * 64, UnsupportedImageError, "GIF image"),
        (b"BM" + b"\x00" * 64, UnsupportedImageError, "BMP image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, MalformedFrameError, "JPEG image does not decode"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", MalformedFrameError, "WEBP image does not decode"),
    ],
)
def test_bad_payloads(data: bytes, error: type[IngestError], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_ws_frame(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_malformed(fmt: str) -> None:
    data = _encode(_picture(120, 160), fmt)
    with pytest.raises(MalformedFrameError, match="does not decode"):
        decode_ws_frame(data[: len(data) * 2 // 3])


def test_exif_orientation_is_applied() -> None:
    picture = _picture(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show rotated 90 degrees clockwise.
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=95, exif=exif)
    frame = decode_ws_frame(buffer.getvalue())
    assert frame.image.shape == (60, 40, 3)
    expected = np.rot90(picture, k=-1)
    assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 12


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA"])
def test_other_colour_modes_become_rgb(mode: str) -> None:
    image = Image.fromarray(_picture()).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    frame = decode_ws_frame(buffer.getvalue())
    assert frame.image.shape == (40, 60, 3)
    expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(frame.image, expected)


def test_an_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.fromarray(np.full((20, 20, 3), v, np.uint8)) for v in (30, 220)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    frame = decode_ws_frame(buffer.getvalue())
    assert frame.image.shape == (20, 20, 3)
    assert int(frame.image.mean()) == 30
