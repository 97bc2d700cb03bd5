"""Video ingest: everything that turns bytes from outside into uint8 RGB frames.

Uploaded clips (:func:`decode_clip`), RTSP sources (:class:`RtspReader`, guarded by
:func:`check_source_url`) and WebSocket frames (:func:`decode_ws_frame`). Every refusal is an
:class:`IngestError` subclass with a stable ``code`` and an ``http_status``.
"""

from service.ingest.clip import ClipInfo, DecodedClip, decode_clip, probe_clip
from service.ingest.errors import IngestError
from service.ingest.sampling import FpsSampler, Sampling
from service.ingest.settings import ClipLimits, FrameLimits, RtspSettings, UrlPolicy

__all__ = [
    "ClipInfo",
    "ClipLimits",
    "DecodedClip",
    "FpsSampler",
    "FrameLimits",
    "IngestError",
    "RtspSettings",
    "Sampling",
    "UrlPolicy",
    "decode_clip",
    "probe_clip",
]
