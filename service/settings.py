"""The service's settings: one validated object, read from ``VIDREC_*`` environment variables.

Gateway, worker and CLI build one :class:`Settings` at start-up; a bad value fails there with a
message naming the variable, not on the first request. The ingest limits are derived from it
(:meth:`Settings.clip_limits`, :meth:`Settings.frame_limits`, :meth:`Settings.url_policy`) so the
two sides of the service enforce the same bounds.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.budget import check_budget, parse_budget_text
from service.ingest.settings import DEFAULT_SOURCE_PORTS, ClipLimits, FrameLimits, UrlPolicy

MiB = 1024 * 1024

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Ids end up inside Redis key names and logs: no whitespace, no key separator.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
_ORIGIN_RE = re.compile(r"^https?://[^/?#\s]+/?$", re.IGNORECASE)

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def settings_problems(exc: ValidationError) -> str:
    """The problems of a failed :class:`Settings` as the variables are set (``VIDREC_DTYPE: ...``,
    not pydantic's bare field names), without the values (a Redis URL may hold a password)."""
    return "; ".join(
        f"VIDREC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors()
    )


def _split_list(value: Any) -> Any:
    """Accepts ``a,b`` or a JSON list for list variables; other values pass to pydantic."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable about the service.

    Every field can be set as ``VIDREC_<FIELD>`` (``VIDREC_REDIS_URL``, ``VIDREC_QUEUE_MAX_JOBS``);
    lists take ``a,b`` or a JSON list.

    Attributes:
        redis_url: ``redis://``, ``rediss://`` or ``unix:///path.sock``; ``None`` makes
            ``vidrec serve`` start an embedded Redis (the gateway and worker roles require one).
        key_prefix: Prefix of every Redis key, so several deployments (or tests) share a server.
        host: Address the gateway listens on.
        port: Port the gateway listens on (0: any free port).
        auth: ``auto`` (API keys required unless the gateway binds a loopback address), ``on``
            or ``off``; see docs/SECURITY.md.
        api_keys_file: File of API keys, one ``name:scopes:sha256`` line each (``vidrec keys
            new`` makes them); re-read when it changes.
        api_keys: The same lines from the environment, separated by newlines or ``;``.
        metrics_admin_only: Serve ``/metrics`` only to keys with the ``admin`` scope (when
            auth is on).
        cors_origins: Browser origins (``https://host[:port]``, or ``*``) allowed to call the
            API and open WebSockets from another origin; same-origin pages need no entry.
        trusted_proxies: Addresses or networks (CIDR) whose ``X-Forwarded-For`` and
            ``X-Forwarded-Proto`` headers are believed (uvicorn's ``forwarded_allow_ips``; ``*``
            for any).
        rate_limit_rps: Requests per second of one key (or client address when auth is off)
            to ``/v1/``, as a token bucket; 0 turns it off.
        rate_limit_burst: Requests one key may make at once above the steady rate.
        quota_live_sessions: Live WebSocket sessions one key holds at once; 0: no quota.
        quota_rtsp_sessions: Open RTSP sessions one key holds at once; 0: no quota.
        quota_clip_jobs: Clip jobs of one key queued or running at once; 0: no quota.
        log_format: ``text`` (for people) or ``json`` (one object per line, for collectors).
        models_dir: Directory of model bundles; ``None``: the shipped demo bundles.
        models: Bundle names to load; empty: every bundle in the directory.
        clip_model: Default model for clips; ``None``: the catalog's default.
        live_model: Default model for live sessions; ``None``: the catalog's default.
        max_upload_bytes: Largest clip upload.
        max_body_bytes: Largest request body of every route but the upload (JSON bodies).
        body_timeout_s: Longest time a request body may take to arrive, first byte to last.
        body_idle_timeout_s: Longest pause while a request body streams in.
        http_keepalive_s: An idle keep-alive connection is closed after this long.
        http_head_timeout_s: A connection whose request line and headers do not arrive within
            this long is closed (slow or half-open clients).
        http_max_connections: Open connections (WebSockets included) one gateway holds; more
            are closed at once. The open-file limit is raised to fit when the hard limit allows.
        http_max_head_bytes: Largest request line plus headers.
        max_clip_seconds: Longest clip duration.
        max_clip_width: Widest clip frame.
        max_clip_height: Tallest clip frame.
        max_clip_pixels: Width times height of a clip frame.
        max_clip_frames: Frames in a clip's index.
        max_clip_pixel_frames: Width times height times frames of a clip: the decode work a clip
            may ask for (probed by the gateway, counted again while the worker decodes). The
            default allows about 32 s of 1080p at 30 fps, 100 s of 720p.
        max_decode_seconds: Wall time of one clip decode.
        decode_isolated: The worker decodes each upload in a child process with the CPU-time and
            memory limits below, killed at the wall-time limit.
        decode_cpu_seconds: CPU time of one isolated decode.
        decode_memory_bytes: Memory one isolated decode may add (address space, which counts
            the decoder threads' reserved stacks too: a 4K decode on 2 cores needs about 1 GiB).
        frame_max_bytes: Largest WebSocket frame message.
        frame_max_width: Widest WebSocket frame.
        frame_max_height: Tallest WebSocket frame.
        frame_max_pixels: Width times height of a WebSocket frame.
        queue_max_jobs: Outstanding clip jobs (queued or running) before submissions get 429.
        retry_after_s: The Retry-After a 429 answers with.
        wait_timeout_s: How long a waiting clip request waits for its result.
        upload_ttl_s: How long an upload waits in Redis for a worker.
        result_ttl_s: How long a job and its result are kept.
        session_ttl_s: How long a closed session and its events are kept.
        heartbeat_interval_s: How often a worker heartbeats (and checks its sessions' leases).
        heartbeat_ttl_s: Silence after which a worker counts as dead; more than the interval. Its
            clip jobs are taken over and its sessions move to another worker as soon as it
            expires.
        reclaim_idle_ms: Idle time after which another worker reclaims a pending clip job even
            though its worker still heartbeats (a safety net; dead workers' jobs go at once).
        max_deliveries: Deliveries of one clip job before it goes to the dead-letter stream.
        worker_id: This worker's id; ``None``: ``{hostname}-{pid}``.
        worker_batch: Clip jobs a worker takes at once.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. Under ``vidrec serve``,
            ``auto`` and ``cuda`` pin one worker to each visible GPU (``cuda:0``, ``cuda:1``...).
        dtype: Floating type of the models: ``auto`` (bfloat16 on a CUDA GPU with native
            bfloat16, compute capability 8.0 on, else float32), ``float32``, ``bfloat16`` or
            ``float16``. Answers are float32 whatever the type.
        workers: Worker processes ``vidrec serve`` starts (``--workers``); ``None``: one per
            visible GPU when ``device`` is ``auto`` or ``cuda`` and there are GPUs, else 1.
        torch_threads: Intra-op threads of a worker's torch (``torch.set_num_threads``);
            ``None``: ``OMP_NUM_THREADS`` when set, else the cores the worker may use divided
            among the workers ``vidrec serve`` starts (one core left to its gateway and Redis on
            a small machine), at least 1 (``service/threads.py``).
        session_capacity: Live sessions one worker runs at once.
        session_lease_s: A live session is held by a lease its gateway connection renews; when
            the gateway or the socket is gone the session ends this long after, its slot freed.
        session_idle_s: A live session that receives no frame for this long ends (an
            ``expired`` event says so).
        stride: A live session emits labels every ``stride`` frames.
        default_budget: The budget of a live session that names none: a fraction, ``all`` or a
            JSON budget such as ``{"threshold": 1.0}``; unset: the budget the model's bundle
            recommends, else the fraction 0.25.
        session_backlog: Frames of one session buffered at its worker; older ones are dropped.
        events_maxlen: Events kept per session (approximately).
        allow_private_sources: Let RTSP sources point at loopback and private addresses.
        source_allow_networks: CIDR blocks RTSP sources may point at even when otherwise denied.
        source_ports: Ports an RTSP source on a public host may use (RTSP's 554 and 8554, 322
            for rtsps); empty: any. Sources on networks opened by the two settings above keep
            every port.
        rtsp_fps: Frames per second taken from an RTSP source.
        rtsp_retry_max_s: Cap on the delay between reconnection attempts to an RTSP source that
            went away; the session retries for as long as it is open.
    """

    model_config = SettingsConfigDict(
        env_prefix="VIDREC_", extra="forbid", validate_assignment=True
    )

    redis_url: str | None = None
    key_prefix: str = "vidrec"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    auth: Literal["auto", "on", "off"] = "auto"
    api_keys_file: Path | None = None
    api_keys: str | None = None
    metrics_admin_only: bool = False
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    rate_limit_rps: float = Field(default=20.0, ge=0)
    rate_limit_burst: PositiveInt = 40
    quota_live_sessions: int = Field(default=32, ge=0)
    quota_rtsp_sessions: int = Field(default=32, ge=0)
    quota_clip_jobs: int = Field(default=64, ge=0)
    log_format: Literal["text", "json"] = "text"

    models_dir: Path | None = None
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    clip_model: str | None = None
    live_model: str | None = None

    max_upload_bytes: PositiveInt = 64 * MiB
    max_body_bytes: PositiveInt = 64 * 1024
    body_timeout_s: PositiveFloat = 120.0
    body_idle_timeout_s: PositiveFloat = 15.0
    http_keepalive_s: PositiveFloat = 5.0
    http_head_timeout_s: PositiveFloat = 10.0
    http_max_connections: PositiveInt = 1000
    http_max_head_bytes: int = Field(default=16 * 1024, ge=1024)
    max_clip_seconds: PositiveFloat = 300.0
    max_clip_width: PositiveInt = 3840
    max_clip_height: PositiveInt = 3840
    max_clip_pixels: PositiveInt = 3840 * 2160
    max_clip_frames: PositiveInt = 18_000
    max_clip_pixel_frames: PositiveInt = 2_000_000_000
    max_decode_seconds: PositiveFloat = 30.0
    decode_isolated: bool = True
    decode_cpu_seconds: PositiveFloat = 30.0
    decode_memory_bytes: PositiveInt = 4 * 1024 * MiB
    frame_max_bytes: PositiveInt = 2 * MiB
    frame_max_width: PositiveInt = 1920
    frame_max_height: PositiveInt = 1920
    frame_max_pixels: PositiveInt = 1920 * 1080

    queue_max_jobs: PositiveInt = 256
    retry_after_s: PositiveInt = 2
    wait_timeout_s: PositiveFloat = 60.0
    upload_ttl_s: PositiveInt = 900
    result_ttl_s: PositiveInt = 3600
    session_ttl_s: PositiveInt = 3600

    heartbeat_interval_s: PositiveFloat = 0.5
    heartbeat_ttl_s: PositiveFloat = 2.0
    reclaim_idle_ms: PositiveInt = 30_000
    max_deliveries: PositiveInt = 3

    worker_id: str | None = None
    worker_batch: PositiveInt = 8
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    workers: PositiveInt | None = None
    torch_threads: PositiveInt | None = None

    session_capacity: PositiveInt = 32
    session_lease_s: PositiveFloat = 5.0
    session_idle_s: PositiveFloat = 120.0
    stride: PositiveInt = 4
    default_budget: Annotated[dict[str, Any] | None, NoDecode] = None
    session_backlog: PositiveInt = 8
    events_maxlen: PositiveInt = 1000

    allow_private_sources: bool = False
    source_allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    source_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: sorted(DEFAULT_SOURCE_PORTS)
    )
    rtsp_fps: PositiveFloat = 10.0
    rtsp_retry_max_s: PositiveFloat = 5.0

    @field_validator("models", "source_allow_networks", "source_ports", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _edge_lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN_RE.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] (no path), or *"
                )
        return [o.rstrip("/").lower() for o in value]

    @field_validator("default_budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> dict[str, Any] | None:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return parse_budget_text(value) if isinstance(value, str) else check_budget(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(_REDIS_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(_REDIS_SCHEMES)}, got {value!r}")
        if value.startswith("unix://") and len(value) <= len("unix://"):
            raise ValueError("a unix:// URL needs the socket path")
        return value

    @field_validator("key_prefix", "worker_id")
    @classmethod
    def _ident(cls, value: str | None) -> str | None:
        if value is not None and not _ID_RE.match(value):
            raise ValueError(
                f"{value!r} must start with a letter or digit and hold only letters, digits, "
                "'.', '_' and '-'"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE_RE.match(value):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value

    @field_validator("source_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [p for p in value if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports must be between 1 and 65535, got {bad}")
        return value

    @field_validator("source_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        UrlPolicy(allow_networks=tuple(value))  # raises ValueError naming the bad block
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_ttl_s ({self.heartbeat_ttl_s}) must exceed heartbeat_interval_s "
                f"({self.heartbeat_interval_s}), or live workers would count as dead"
            )
        return self

    def clip_limits(self) -> ClipLimits:
        """The bounds on an uploaded clip."""
        return ClipLimits(
            max_bytes=self.max_upload_bytes,
            max_duration_s=self.max_clip_seconds,
            max_width=self.max_clip_width,
            max_height=self.max_clip_height,
            max_pixels=self.max_clip_pixels,
            max_frames=self.max_clip_frames,
            max_pixel_frames=self.max_clip_pixel_frames,
            max_decode_seconds=self.max_decode_seconds,
        )

    def frame_limits(self) -> FrameLimits:
        """The bounds on one WebSocket frame."""
        return FrameLimits(
            max_bytes=self.frame_max_bytes,
            max_width=self.frame_max_width,
            max_height=self.frame_max_height,
            max_pixels=self.frame_max_pixels,
        )

    def url_policy(self) -> UrlPolicy:
        """Which hosts an RTSP source may point at; link-local (cloud metadata) stays refused."""
        return UrlPolicy(
            allow_loopback=self.allow_private_sources,
            allow_private=self.allow_private_sources,
            allow_networks=tuple(self.source_allow_networks),
            allow_ports=frozenset(self.source_ports),
        )

    def resolved_worker_id(self) -> str:
        """``worker_id``, or ``{hostname}-{pid}``, unique among the workers of one server."""
        if self.worker_id is not None:
            return self.worker_id
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "worker"
        return f"{host}-{os.getpid()}"
