"""Recognise what a byte string is from its first bytes.

Only used to word error messages precisely ("a PNG image, not a video"). Security does not rely
on it: FFmpeg's own ``format_whitelist`` decides what may be demuxed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["video", "other_video", "image", "audio", "playlist", "text", "empty", "unknown"]


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes look like.

    Attributes:
        kind: ``"video"`` for an accepted container, ``"other_video"`` for a video container that
            is not accepted, then images, audio, playlists, text, empty, unknown.
        name: Human name of the format ("MP4/MOV", "PNG image"), empty when unknown.
    """

    kind: Kind
    name: str = ""


_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def sniff(head: bytes) -> Sniffed:
    """Classifies a file from its first bytes (64 are enough).

    Args:
        head: The start of the file.

    Returns:
        The best guess; ``kind="unknown"`` when nothing matches.
    """
    if not head:
        return Sniffed("empty")
    if head[4:8] in _MP4_BOXES:
        if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"M4B"):
            return Sniffed("audio", "M4A audio")
        return Sniffed("video", "MP4/MOV")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "Matroska/WebM")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Sniffed("video", "AVI")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Sniffed("audio", "WAV audio")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return Sniffed("image", "WebP image")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "JPEG image")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "PNG image")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "GIF image")
    if head.startswith(b"BM"):
        return Sniffed("image", "BMP image")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Sniffed("image", "TIFF image")
    if head.startswith(b"FLV"):
        return Sniffed("other_video", "FLV")
    if head.startswith(b"OggS"):
        return Sniffed("other_video", "Ogg")
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return Sniffed("other_video", "ASF/WMV")
    if head.startswith(b"\x00\x00\x01\xba"):
        return Sniffed("other_video", "MPEG program stream")
    if head[0] == 0x47 and len(head) > 188 and head[188] == 0x47:
        return Sniffed("other_video", "MPEG transport stream")
    if head.startswith((b"ID3", b"fLaC")) or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf1"):
        return Sniffed("audio", "audio file")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"#EXTM3U", b"ffconcat", b"[playlist]")) or b"<MPD" in head:
        return Sniffed("playlist", "playlist")
    if stripped.startswith(b"file ") or stripped.startswith(b"file'"):
        return Sniffed("playlist", "concat list")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return Sniffed("unknown")
    return Sniffed("text", "text")
