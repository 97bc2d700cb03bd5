"""Typed ingest errors.

Every refusal of outside input raises a subclass of :class:`IngestError`. Each class carries a
stable machine-readable ``code`` and the HTTP status a gateway should answer with, so the gateway
maps errors to responses with one ``except IngestError`` and never parses messages.
"""

from __future__ import annotations

from typing import Any, ClassVar


class IngestError(Exception):
    """Base class: outside input was refused.

    Attributes:
        code: Stable identifier for clients and metrics (``"truncated"``, ``"too_long"``...).
        http_status: The 4xx status a gateway should answer with.
        message: A sentence for the client that says what was wrong.
    """

    code: ClassVar[str] = "ingest_error"
    http_status: ClassVar[int] = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON body a gateway can send: ``{"error": code, "message": ...}``."""
        return {"error": self.code, "message": self.message}


# Uploaded clips.


class NotAVideoError(IngestError):
    """The bytes are not a video file at all (empty, random, an image, text, a playlist)."""

    code = "not_a_video"
    http_status = 415


class UnsupportedContainerError(IngestError):
    """A recognised video container that is not on the whitelist (FLV, MPEG-TS, Ogg...)."""

    code = "unsupported_container"
    http_status = 415


class NoVideoStreamError(IngestError):
    """The container is valid but holds no video stream (audio only, say)."""

    code = "no_video_stream"
    http_status = 422


class UnsupportedCodecError(IngestError):
    """The video stream uses a codec that is not allowed or that this FFmpeg cannot decode."""

    code = "unsupported_codec"
    http_status = 415


class TruncatedError(IngestError):
    """The file ends early: its header or part of its frames are missing."""

    code = "truncated"
    http_status = 422


class CorruptVideoError(IngestError):
    """The structure is complete but the decoder rejected the data."""

    code = "corrupt"
    http_status = 422


class TooLargeError(IngestError):
    """The upload has more bytes than allowed."""

    code = "too_large"
    http_status = 413


class ResolutionTooLargeError(IngestError):
    """The declared or decoded frame size exceeds the resolution limit."""

    code = "resolution_too_large"
    http_status = 422


class TooLongError(IngestError):
    """The clip lasts longer than allowed."""

    code = "too_long"
    http_status = 422


class TooManyFramesError(IngestError):
    """The clip holds, or would need decoding, more frames than allowed."""

    code = "too_many_frames"
    http_status = 422


class DecodeTooCostlyError(IngestError):
    """Decoding the clip would cost more than allowed: too many pixels times frames, or more
    CPU time or memory than the decoder is given."""

    code = "decode_too_costly"
    http_status = 422


class DecodeTimeoutError(IngestError):
    """Decoding took longer than the wall-time limit."""

    code = "decode_timeout"
    http_status = 422


# Source URLs and live sources.


class InvalidSourceURLError(IngestError):
    """The source URL is malformed or uses a scheme other than rtsp/rtsps."""

    code = "invalid_source_url"
    http_status = 400


class SourceURLForbiddenError(IngestError):
    """The source URL is well formed but its host is refused by the URL policy."""

    code = "source_url_forbidden"
    http_status = 403


class SourceUnreachableError(IngestError):
    """The live source could not be connected to (refused, no route, unknown name)."""

    code = "source_unreachable"
    http_status = 422


class SourceTimeoutError(IngestError):
    """The live source did not answer, or stopped sending, within the timeout."""

    code = "source_timeout"
    http_status = 422


class SourceError(IngestError):
    """The live source answered but failed otherwise (not found, auth, bad stream, ended)."""

    code = "source_error"
    http_status = 422


# WebSocket frames.


class FrameTooLargeError(IngestError):
    """A WebSocket frame has too many bytes or pixels."""

    code = "frame_too_large"
    http_status = 413


class UnsupportedImageError(IngestError):
    """A WebSocket frame is not a JPEG, PNG or WebP image."""

    code = "unsupported_image"
    http_status = 415


class MalformedFrameError(IngestError):
    """A WebSocket frame has a bad header or image data that does not decode."""

    code = "malformed_frame"
    http_status = 400
