"""The JSON the service sends, as typed models: clip answers, jobs, errors, events, sessions.

One module for the gateway, the worker and the SDK (``vidrec``), importing nothing but pydantic,
so a client can load it without torch or ``model_core``. The shapes are those the gateway
(``service/gateway``) and the worker (``service/worker/answers.py``, ``sessions.py``) write today,
as docs/API.md shows them.

Answers parse leniently: every model allows fields it does not name (kept in ``model_extra``), so
a client built against this version still reads a server that added fields, and an event of a type
it does not know parses as :class:`UnknownEvent`. The server, for its part, should write through
these models (``response_model`` on the routes; the worker's answers) so the two cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Budget = dict[str, Any]
"""A live session's compute budget: exactly one of ``{"fraction": f}``, ``{"tokens": n}``,
``{"threshold": t}`` (or three thresholds) and ``{"keep_all": true}``; see service/budget.py."""


class WireModel(BaseModel):
    """Base of every answer: unknown fields are kept, never refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# Errors.


class ErrorDetail(WireModel):
    """What was wrong. Some codes carry more fields (``models``, ``max_bytes``,
    ``retry_after_s``, ``details``), kept in ``model_extra``.

    Attributes:
        code: Stable snake_case code to branch on.
        message: What was wrong and what is accepted, for people.
        request_id: The request's id (the ``X-Request-ID`` header), when the server sends one.
    """

    code: str
    message: str
    request_id: str | None = None


class ErrorBody(WireModel):
    """Every refusal: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail


# Clip answers and jobs.


class Label(WireModel):
    """One class with its softmax score."""

    label: str
    score: float


class VideoInfo(WireModel):
    """What an uploaded file is. The worker's answer names the frame rate ``fps``, the gateway's
    probe (a job's ``params.probe``) ``avg_fps``; both parse into ``fps``."""

    container: str
    codec: str
    width: int
    height: int
    rotation: int = 0
    num_frames: int
    duration_s: float
    fps: float = Field(validation_alias=AliasChoices("fps", "avg_fps"))


class Sampled(WireModel):
    """The frames the model saw: per view, their indices and timestamps; and the file itself."""

    frames: int
    views: int
    clips: int
    crops: int
    indices: list[list[int]]
    timestamps_s: list[list[float]]
    frames_decoded: int
    clip: VideoInfo


class ClipTiming(WireModel):
    """Milliseconds: queued until a worker took it, decoding, its share of the batched forward
    pass, and queued until answered."""

    queue_wait: float
    decode: float
    inference: float
    total: float


class ClipCompute(WireModel):
    """GMACs spent (all views) and frames run through the model."""

    gmacs: float
    frames: int


class ClipAnswer(WireModel):
    """The answer of ``POST /v1/clips`` (and a done job's ``result``)."""

    job_id: str | None = None
    model: str
    labels: list[Label]
    sampled: Sampled | None = None
    timing_ms: ClipTiming
    compute: ClipCompute
    worker: str | None = None
    deliveries: int = 1


class JobAccepted(WireModel):
    """``202``: the job is queued or running; poll ``status_url``."""

    job_id: str
    status: str
    status_url: str


class JobError(WireModel):
    """Why a job failed, with the HTTP status a direct answer would have had."""

    code: str
    message: str
    http_status: int = 500


class JobView(WireModel):
    """``GET /v1/jobs/{id}``.

    Attributes:
        status: ``queued``, ``running``, ``done`` (with ``result``) or ``failed`` (with ``error``).
        params: What the gateway stored with the job (``top_k``, ``clips``, ``crops``, ``probe``).
        created: Unix seconds; ``started`` and ``finished`` likewise once known.
        deliveries: Times a worker took the job.
    """

    job_id: str
    status: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    filename: str = ""
    size: int = 0
    created: float
    started: float | None = None
    finished: float | None = None
    worker: str | None = None
    deliveries: int = 0
    result: ClipAnswer | None = None
    error: JobError | None = None


# Live events.


class SessionCounters(WireModel):
    """Frames the gateways routed to the session, its worker ran, its worker dropped (backlog
    full), and frames lost with an owner that died before running them."""

    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_lost: int = 0


class LiveCompute(WireModel):
    """What frames of a stream cost: GMACs spent, what the dense model would have spent, the
    fraction of tokens recomputed, and the frames counted."""

    gmacs: float
    dense_gmacs: float
    recompute_fraction: float
    frames: int


class EventBase(WireModel):
    """Fields every event may carry: its id in the session's event stream (events relayed from
    Redis have one; resume after it) and the request id of the connection."""

    type: str
    session_id: str | None = None
    event_id: str | None = None
    request_id: str | None = None


class SessionEvent(EventBase):
    """First event of a stream: the session as opened (the live socket: with ``window``), or its
    whole view (the events socket: the fields of :class:`SessionView`)."""

    type: Literal["session"] = "session"
    kind: str | None = None
    model: str | None = None
    stride: int | None = None
    window: int | None = None
    budget: Budget | None = None
    owner: str | None = None
    events_url: str | None = None
    state: str | None = None
    source: str | None = None
    source_health: dict[str, Any] | None = None
    created: float | None = None
    epoch: int | None = None
    latest: dict[str, Any] | None = None
    counters: SessionCounters | None = None
    ended_reason: str | None = None


class LabelsEvent(EventBase):
    """Labels over the last ``window`` frames, every ``stride`` frames.

    Attributes:
        frame_index: Frames of the session the model processed.
        input_index: Index of the newest frame as the gateway (or RTSP reader) numbered it.
        compute: Cost of the frames since the previous event; ``totals`` since the start.
        latency_ms: From the newest frame's arrival to the event.
        dropped: Frames of the session dropped so far.
    """

    type: Literal["labels"] = "labels"
    frame_index: int
    input_index: int | None = None
    model: str | None = None
    labels: list[Label]
    window: int | None = None
    compute: LiveCompute
    totals: LiveCompute | None = None
    latency_ms: float | None = None
    dropped: int = 0


class ErrorEvent(EventBase):
    """A refused frame or message (the stream goes on), or a refused stream (then a close)."""

    type: Literal["error"] = "error"
    code: str
    message: str
    input_index: int | None = None


class BudgetEvent(EventBase):
    """The budget changed, from the next frame on."""

    type: Literal["budget"] = "budget"
    budget: Budget


class ClosedEvent(EventBase):
    """The client's ``{"type": "close"}`` was done; the server closes the socket next."""

    type: Literal["closed"] = "closed"


class EndEvent(EventBase):
    """The session ended on the server's side (closed elsewhere, failed, or expired: ``reason``)."""

    type: Literal["end"] = "end"
    state: str
    reason: str | None = None


class ExpiredEvent(EventBase):
    """The session ended by itself: its lease lapsed (``lease_expired``: the connection holding
    it is gone) or no frame came for a while (``idle``)."""

    type: Literal["expired"] = "expired"
    reason: str
    message: str | None = None


class MovedEvent(EventBase):
    """The owner worker died and ``owner`` took the session over (a full first frame again)."""

    type: Literal["moved"] = "moved"
    owner: str
    worker: str | None = None
    from_: str | None = Field(default=None, alias="from")
    epoch: int = 0
    frame_index: int = 0
    recovered_frames: int = 0
    lost_frames: int = 0


class SourceEvent(EventBase):
    """An RTSP source's health: ``connecting``, ``streaming``, ``reconnecting``, ``stopped`` or
    ``failed``."""

    type: Literal["source"] = "source"
    state: str
    session_state: str | None = None
    frames_received: int = 0
    reconnects: int = 0
    attempts: int = 0
    next_retry_s: float | None = None
    error: str | None = None


class UnknownEvent(EventBase):
    """An event of a type this version does not know; its fields are in ``model_extra``."""


Event = (
    SessionEvent
    | LabelsEvent
    | ErrorEvent
    | BudgetEvent
    | ClosedEvent
    | EndEvent
    | ExpiredEvent
    | MovedEvent
    | SourceEvent
    | UnknownEvent
)

EVENT_TYPES: dict[str, type[EventBase]] = {
    "session": SessionEvent,
    "labels": LabelsEvent,
    "error": ErrorEvent,
    "budget": BudgetEvent,
    "closed": ClosedEvent,
    "end": EndEvent,
    "expired": ExpiredEvent,
    "moved": MovedEvent,
    "source": SourceEvent,
}


def parse_event(data: dict[str, Any]) -> Event:
    """The typed event for one JSON event (:class:`UnknownEvent` for a type not listed).

    Raises:
        pydantic.ValidationError: A known type without the fields it must have.
    """
    cls = EVENT_TYPES.get(str(data.get("type")), UnknownEvent)
    event: Event = cls.model_validate(data)  # type: ignore[assignment]
    return event


# Sessions.


class SessionView(WireModel):
    """``POST /v1/streams``, ``GET`` and ``DELETE /v1/streams/{id}``.

    Attributes:
        kind: ``live`` or ``rtsp``.
        state: ``opening``, ``running``, ``reconnecting``, ``failed`` or ``closed``.
        source: The RTSP URL without its password; ``None`` for live sessions.
        latest: The latest labels event, as sent.
        epoch: Owner changes so far.
        ended_reason: Why it ended (``closed``, ``lease_expired``, ``idle``...), once it has.
        closed_now: Only in ``DELETE``'s answer: whether this request closed it.
    """

    session_id: str
    kind: str
    model: str
    owner: str | None = None
    state: str
    budget: Budget | None = None
    stride: int | None = None
    source: str | None = None
    source_health: dict[str, Any] | None = None
    created: float | None = None
    epoch: int = 0
    latest: dict[str, Any] | None = None
    counters: SessionCounters = Field(default_factory=SessionCounters)
    events_url: str
    ended_reason: str | None = None
    closed_now: bool | None = None


class SessionList(WireModel):
    """``GET /v1/streams``: every open session, oldest first."""

    sessions: list[SessionView]
    count: int = 0


# Models and health.


class ModelServing(WireModel):
    """Ids of the workers serving a model for clips and for live sessions."""

    clip: list[str] = Field(default_factory=list)
    live: list[str] = Field(default_factory=list)


class ModelInfo(WireModel):
    """One model of ``GET /v1/models``; only ``name`` and ``serving`` are sure to be there (a
    worker that serves a model it did not describe)."""

    name: str
    family: str | None = None
    labels: list[str] = Field(default_factory=list)
    frames: int | None = None
    img_size: int | None = None
    gmacs_per_clip: float | None = None
    gmacs_per_frame: float | None = None
    parameters: int | None = None
    live: bool = False
    recommended_budget: Budget | None = None
    default_for: list[str] = Field(default_factory=list)
    serving: ModelServing = Field(default_factory=ModelServing)


class ModelDefaults(WireModel):
    """The model a request without ``model`` gets, per role (``None``: none served)."""

    clip: str | None = None
    live: str | None = None


class ModelList(WireModel):
    """``GET /v1/models``."""

    models: list[ModelInfo]
    defaults: ModelDefaults = Field(default_factory=ModelDefaults)
    workers: list[str] = Field(default_factory=list)


class Health(WireModel):
    """``GET /healthz``: ``{"status": "ok"}`` while the process runs."""

    status: str


class Readiness(WireModel):
    """``GET /readyz`` (200 or 503): Redis answers and a live worker has its models loaded."""

    ready: bool
    redis: bool
    workers: int = 0
    workers_ready: int | None = None
    reason: str | None = None
