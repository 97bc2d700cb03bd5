"""The JSON the service sends, as typed models: clip answers, jobs, errors, events, sessions.

One module for the gateway, the worker and the SDK (``vidrec``), importing nothing but pydantic,
so a client can load it without torch or ``model_core``. The shapes are those the gateway
(``service/gateway``) and the worker (``service/worker/answers.py``, ``sessions.py``) write today,
as docs/API.md shows them.

Answers parse leniently: every model allows fields it does not name (kept in ``model_extra``), so
a client built against this version still reads a server that added fields, and an event of a type
it does not know parses as :class:`UnknownEvent`.

The server writes through these models, so the two cannot drift: each gateway route declares its
model (``response_model``, and :class:`ErrorBody` for its refusals) so the OpenAPI document types
every answer; what the server builds itself goes through :func:`build`, which refuses a field the
models do not name (the lenient parse would let a typo through); what it only passes on (a
worker's answer read back from Redis, the workers' model rows) is parsed leniently, so a newer
worker's fields reach newer clients. The bounds and defaults of the requests are in
``service/limits.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service import limits

Budget = dict[str, Any]
"""A live session's compute budget: exactly one of ``{"fraction": f}``, ``{"tokens": n}``,
``{"threshold": t}`` (or three thresholds; ``"input": t_in`` beside it adds an input gate) and
``{"keep_all": true}``; see service/budget.py."""


class WireModel(BaseModel):
    """Base of every answer: unknown fields are kept, never refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object to send: the fields that were given (a field left out stays out, as
        the hand-built answers had it), by their wire names (``from``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


M = TypeVar("M", bound=BaseModel)


def undescribed(model: BaseModel, where: str = "") -> list[str]:
    """Fields of ``model`` and of the models inside it that the wire models do not name (dotted
    paths); empty when the models describe all of it."""
    found = [f"{where}{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, BaseModel):
                found += undescribed(item, f"{where}{name}.")
    return found


def build(cls: type[M], data: Mapping[str, Any]) -> M:
    """Server side: ``data`` as ``cls``, refusing what the lenient parse would let through.

    The models accept unknown fields so that clients read newer servers; the server, which writes
    the answers, must not send a field the contract does not name (a typo, or a field added
    without its model). Answers the server builds itself go through here; answers it only relays
    (a worker's, read back from Redis) are parsed leniently, so a newer worker's fields pass.

    Raises:
        pydantic.ValidationError: A field missing or of the wrong type.
        ValueError: Fields the models do not name.
    """
    model = cls.model_validate(data)
    extra = undescribed(model)
    if extra:
        raise ValueError(f"{cls.__name__} has fields service/wire.py does not name: {extra}")
    return model


# Errors.


class ValidationIssue(WireModel):
    """One thing wrong with a request's parameters: where (``["body", "top_k"]``) and what."""

    loc: list[str | int]
    msg: str


class ErrorDetail(WireModel):
    """What was wrong; some codes carry the optional fields too.

    Attributes:
        code: Stable snake_case code to branch on.
        message: What was wrong and what is accepted, for people.
        request_id: The request's id (the ``X-Request-ID`` header), when the server sends one.
        details: ``invalid_request``: each parameter that was wrong (an unknown field is named
            in ``loc``).
        models: ``unknown_model``: the models that are served.
        max_bytes: ``too_large``: the size accepted.
        retry_after_s: ``queue_full``, ``rate_limited``, ``quota_exceeded``: seconds to wait
            (also the ``Retry-After`` header).
        limit: ``rate_limited``, ``quota_exceeded``: the setting that sets the limit.
        required_scopes: ``forbidden``: the scopes that would do.
        job_id: A failed or unfollowable clip job's id.
        status_url: Where that job's state can still be read.
    """

    code: str
    message: str
    request_id: str | None = None
    details: list[ValidationIssue] | None = None
    models: list[str] | None = None
    max_bytes: int | None = None
    retry_after_s: int | float | None = None
    limit: str | None = None
    required_scopes: list[str] | None = None
    job_id: str | None = None
    status_url: str | None = None


class ErrorBody(WireModel):
    """Every refusal: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail


# Clip answers and jobs.


class Label(WireModel):
    """One class with its softmax score."""

    label: str
    score: float


class Probed(Protocol):
    """What ``service.ingest.ClipInfo`` holds (named here so this module imports no ingest)."""

    @property
    def container(self) -> str: ...
    @property
    def codec(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def rotation(self) -> int: ...
    @property
    def num_frames(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def avg_fps(self) -> float: ...


class VideoInfo(WireModel):
    """What an uploaded file is.

    Attributes:
        fps: Average frame rate, ``num_frames / duration_s`` (the file's rate may vary). Servers
            before this contract named it ``avg_fps`` in a job's ``params.probe``; that parses too.
    """

    container: str
    codec: str
    width: int
    height: int
    rotation: int = 0
    num_frames: int
    duration_s: float
    fps: float = Field(validation_alias=AliasChoices("fps", "avg_fps"))

    @classmethod
    def of(cls, info: Probed) -> VideoInfo:
        """The answer's form of a probed or decoded file (rounded: 0.1 ms, 0.001 fps)."""
        return cls(
            container=info.container,
            codec=info.codec,
            width=info.width,
            height=info.height,
            rotation=info.rotation,
            num_frames=info.num_frames,
            duration_s=round(info.duration_s, 4),
            fps=round(info.avg_fps, 3),
        )


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


class Timing(WireModel):
    """Where an answer's time went, in milliseconds; every answer carries one (``timing_ms``).

    Attributes:
        queue_wait: A clip: from the upload being queued until a worker took it. A live event:
            from the newest frame's arrival (the gateway's receive time, or the RTSP reader's
            decode time) until its worker started on it (its backlog, and the batch it joined).
        decode: Decoding: the clip's frames, or the event's frames since the previous event.
        inference: The model: this answer's share of the batched forward passes.
        total: From the upload being queued, or the newest frame's arrival, to the answer being
            written; the rest of it is the worker's own work (sampling, writing).
    """

    queue_wait: float
    decode: float
    inference: float
    total: float


ClipTiming = Timing
"""The name of :class:`Timing` before live events carried it too."""


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
    timing_ms: Timing
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


class JobParams(WireModel):
    """What the gateway stored with a clip job: the request's parameters and the file's probe."""

    top_k: int = limits.DEFAULT_TOP_K
    clips: int = limits.DEFAULT_CLIPS
    crops: int = limits.DEFAULT_CROPS
    probe: VideoInfo | None = None


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
    params: JobParams = Field(default_factory=JobParams)
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

    def wire(self) -> dict[str, Any]:
        """The event's JSON, ``type`` first (given or not: each event class fixes it)."""
        return {"type": self.type, **super().wire()}


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
        latency_ms: From the newest frame's arrival to the event (``timing_ms.total``; kept for
            clients of servers before ``timing_ms``).
        timing_ms: Where the time went, as for a clip (the newest frame's wait, the decoding
            and model steps of the frames since the previous event); ``None`` from older servers.
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
    timing_ms: Timing | None = None
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


class SourceError(WireModel):
    """Why an RTSP source's last connection failed."""

    code: str
    message: str


class SourceEvent(EventBase):
    """An RTSP source's health: ``connecting``, ``streaming``, ``reconnecting``, ``stopped`` or
    ``failed``; ``error``: why the last connection failed (a bare message from servers before
    this contract named it)."""

    type: Literal["source"] = "source"
    state: str
    session_state: str | None = None
    frames_received: int = 0
    reconnects: int = 0
    attempts: int = 0
    next_retry_s: float | None = None
    error: SourceError | str | None = None


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
    """``GET /v1/streams``: the open sessions the caller may see (with auth on, its key's own;
    an admin key's or with auth off, every one), oldest first."""

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
