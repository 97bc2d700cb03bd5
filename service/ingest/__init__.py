"""Video ingest: everything that turns bytes from outside into uint8 RGB frames.

Uploaded clips (:func:`decode_clip`, or :func:`decode_clip_isolated` in a child process that is
killed when it overruns), RTSP sources (:class:`RtspReader`, guarded by
:func:`check_source_url`) and WebSocket frames (:func:`decode_ws_frame`). Every refusal is an
:class:`IngestError` subclass with a stable ``code`` and an ``http_status``.
"""

from service.ingest.clip import ClipInfo, DecodedClip, decode_clip, probe_clip
from service.ingest.errors import IngestError
from service.ingest.isolated import decode_clip_isolated
from service.ingest.rtsp import LiveFrame, ReaderStatus, RtspReader, StreamState
from service.ingest.sampling import FpsSampler, Sampling
from service.ingest.settings import ClipLimits, FrameLimits, RtspSettings, UrlPolicy
from service.ingest.url_policy import CheckedURL, check_source_url, precheck_source_url
from service.ingest.ws_frames import FrameHeader, WsFrame, decode_ws_frame, split_message

__all__ = [
    "CheckedURL",
    "ClipInfo",
    "ClipLimits",
    "DecodedClip",
    "FpsSampler",
    "FrameHeader",
    "FrameLimits",
    "IngestError",
    "LiveFrame",
    "ReaderStatus",
    "RtspReader",
    "RtspSettings",
    "Sampling",
    "StreamState",
    "UrlPolicy",
    "WsFrame",
    "check_source_url",
    "decode_clip",
    "decode_clip_isolated",
    "decode_ws_frame",
    "precheck_source_url",
    "probe_clip",
    "split_message",
]
