"""The vidrec Python SDK: a client of a running vidrec server.

    from vidrec import Client

    with Client() as client:                       # $VIDREC_URL, $VIDREC_API_KEY
        answer = client.classify("clip.mp4")
        print(answer.labels[0].label, answer.timing_ms.total, answer.compute.gmacs)

Sync (:class:`Client`) and asyncio (:class:`AsyncClient`) clients for clips, jobs, live streams
(frames from numpy arrays, image files, a video file or a camera; typed events back), RTSP
sessions and models, with retries that honour ``Retry-After``. Importing it loads neither torch
nor ``model_core``; numpy, Pillow and PyAV are imported only to encode frames. docs/SDK.md has
the guide.
"""

from service.wire import (
    BudgetEvent,
    ClipAnswer,
    ClosedEvent,
    EndEvent,
    ErrorEvent,
    Event,
    ExpiredEvent,
    Health,
    JobAccepted,
    JobView,
    LabelsEvent,
    ModelInfo,
    ModelList,
    MovedEvent,
    Readiness,
    SessionEvent,
    SessionView,
    SourceEvent,
    Timing,
    UnknownEvent,
)
from vidrec._config import DEFAULT_URL, RetryPolicy
from vidrec.aio import AsyncClient
from vidrec.client import Client, LiveStream
from vidrec.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnsupportedMediaError,
    VidrecError,
)
from vidrec.frames import camera_frames, encode_jpeg, video_frames
from vidrec.live import AsyncLiveStream, StreamStats

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "AsyncLiveStream",
    "AuthenticationError",
    "BadRequestError",
    "BudgetEvent",
    "Client",
    "ClipAnswer",
    "ClosedEvent",
    "ConflictError",
    "EndEvent",
    "ErrorEvent",
    "Event",
    "ExpiredEvent",
    "Health",
    "JobAccepted",
    "JobTimeoutError",
    "JobView",
    "LabelsEvent",
    "LiveStream",
    "ModelInfo",
    "ModelList",
    "MovedEvent",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Readiness",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "SessionEvent",
    "SessionView",
    "SourceEvent",
    "StreamStats",
    "Timing",
    "TransportError",
    "UnknownEvent",
    "UnsupportedMediaError",
    "VidrecError",
    "camera_frames",
    "encode_jpeg",
    "video_frames",
]
