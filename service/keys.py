"""Every Redis key, prefix, stream bound and TTL of the service, in one place.

Gateway and worker find each other only through these names, so they must agree on them. A
:class:`Keys` carries the prefix (several deployments or tests can share a server) and the TTLs
that are configurable; :meth:`Keys.from_settings` builds it from :class:`Settings`.

Layout, with ``p`` the prefix:

- ``p:clips`` stream of clip jobs (field ``job``), read by consumer group :data:`CLIP_GROUP`;
  entries are acked and deleted when done, so its length is the queue depth.
- ``p:clips:dead`` dead-letter stream: ``job``, ``error``, ``deliveries``, ``worker``.
- ``p:job:{id}`` job hash, ``p:upload:{id}`` uploaded bytes, ``p:result:{id}`` answer JSON,
  ``p:done:{id}`` list a waiting gateway blocks on.
- ``p:workers`` set of worker ids; ``p:worker:{id}`` heartbeat hash (alive iff it exists),
  ``p:worker:{id}:metrics`` Prometheus text, ``p:worker:{id}:inbox`` session messages.
- ``p:rate:{who}`` token bucket of one key or client address; ``p:quota:{kind}:{who}`` sorted set
  of the sessions or jobs it holds (``kind``: ``live``, ``rtsp``, ``clips``).
- ``p:sessions`` set of open session ids; ``p:session:{id}`` hash, ``p:session:{id}:events`` stream,
  ``p:session:{id}:lease`` the lease of a live session (a TTL its gateway connection renews).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings

CLIP_GROUP = "workers"
"""Consumer group of the workers on the clip stream."""

INBOX_MAXLEN = 10_000
"""Approximate bound on a worker's inbox, so a stalled worker cannot fill Redis with frames."""

INBOX_TTL_S = 60
"""An inbox nobody reads (its worker died) disappears after this long; every write refreshes it."""

DEAD_LETTER_MAXLEN = 10_000
"""Approximate bound on the dead-letter stream."""

HOLDINGS_TTL_S = 86_400
"""A quota's record of held sessions or jobs outlives its last use by this long."""

HOLD_PENDING_MS = 30_000
"""A quota place taken for a session or job being created is given up after this long unless
the session or job is recorded (a gateway that died half-way cannot keep it)."""

DEFAULT_UPLOAD_TTL_S = 900
DEFAULT_RESULT_TTL_S = 3600
DEFAULT_SESSION_TTL_S = 3600
DEFAULT_HEARTBEAT_TTL_S = 2.0
DEFAULT_SESSION_LEASE_S = 5.0
DEFAULT_EVENTS_MAXLEN = 1000


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix, with the TTLs and bounds that go with them.

    Attributes:
        prefix: Prefix of every key.
        upload_ttl_s: Lifetime of an uploaded clip waiting for a worker.
        result_ttl_s: Lifetime of a job hash, its result and its done list.
        session_ttl_s: Lifetime of a closed session's hash and events.
        heartbeat_ttl_s: Lifetime of a worker's heartbeat hash and metrics.
        events_maxlen: Approximate bound on one session's event stream.
        session_lease_s: Lifetime of a live session's lease between two renewals.
    """

    prefix: str = "vidrec"
    upload_ttl_s: int = DEFAULT_UPLOAD_TTL_S
    result_ttl_s: int = DEFAULT_RESULT_TTL_S
    session_ttl_s: int = DEFAULT_SESSION_TTL_S
    heartbeat_ttl_s: float = DEFAULT_HEARTBEAT_TTL_S
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    session_lease_s: float = DEFAULT_SESSION_LEASE_S

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError("prefix must not be empty")
        for name in ("upload_ttl_s", "result_ttl_s", "session_ttl_s", "events_maxlen"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.heartbeat_ttl_s <= 0:
            raise ValueError("heartbeat_ttl_s must be positive")
        if self.session_lease_s <= 0:
            raise ValueError("session_lease_s must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        """The keys and TTLs a deployment configured."""
        return cls(
            prefix=settings.key_prefix,
            upload_ttl_s=settings.upload_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            session_ttl_s=settings.session_ttl_s,
            heartbeat_ttl_s=settings.heartbeat_ttl_s,
            events_maxlen=settings.events_maxlen,
            session_lease_s=settings.session_lease_s,
        )

    @property
    def heartbeat_ttl_ms(self) -> int:
        """``heartbeat_ttl_s`` in milliseconds, for PEXPIRE (sub-second TTLs in tests)."""
        return max(1, round(self.heartbeat_ttl_s * 1000))

    @property
    def session_lease_ms(self) -> int:
        """``session_lease_s`` in milliseconds, for PEXPIRE."""
        return max(1, round(self.session_lease_s * 1000))

    @property
    def pattern(self) -> str:
        """SCAN pattern matching every key of this prefix."""
        return f"{self.prefix}:*"

    # Clip jobs.

    @property
    def clips(self) -> str:
        """Stream of clip jobs."""
        return f"{self.prefix}:clips"

    @property
    def dead_letter(self) -> str:
        """Stream of clip jobs that kept failing."""
        return f"{self.prefix}:clips:dead"

    def job(self, job_id: str) -> str:
        """Hash describing one clip job."""
        return f"{self.prefix}:job:{job_id}"

    def upload(self, job_id: str) -> str:
        """The uploaded bytes of one clip job."""
        return f"{self.prefix}:upload:{job_id}"

    def result(self, job_id: str) -> str:
        """The answer JSON of one clip job, written once."""
        return f"{self.prefix}:result:{job_id}"

    def done(self, job_id: str) -> str:
        """List that receives one item when the result is written, for blocking waiters."""
        return f"{self.prefix}:done:{job_id}"

    # Workers.

    @property
    def workers(self) -> str:
        """Set of registered worker ids."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Heartbeat hash of one worker; it exists only while the worker is alive."""
        return f"{self.prefix}:worker:{worker_id}"

    def worker_metrics(self, worker_id: str) -> str:
        """Prometheus text exposition of one worker."""
        return f"{self.prefix}:worker:{worker_id}:metrics"

    def inbox(self, worker_id: str) -> str:
        """Stream of session messages (frames, budgets, open, close) for one worker."""
        return f"{self.prefix}:worker:{worker_id}:inbox"

    # Sessions.

    @property
    def sessions(self) -> str:
        """Set of open session ids."""
        return f"{self.prefix}:sessions"

    def session(self, session_id: str) -> str:
        """Hash describing one session."""
        return f"{self.prefix}:session:{session_id}"

    def events(self, session_id: str) -> str:
        """Stream of one session's events."""
        return f"{self.prefix}:session:{session_id}:events"

    def lease(self, session_id: str) -> str:
        """A live session's lease: it exists while the gateway connection holding it renews it."""
        return f"{self.prefix}:session:{session_id}:lease"

    # Rate limits and quotas (service.queue.limits); ``who`` is ``key:{name}`` or ``addr:{ip}``.

    def rate(self, who: str) -> str:
        """Token bucket (hash: ``tokens``, ``ts``) of one key or client address."""
        return f"{self.prefix}:rate:{who}"

    def holdings(self, kind: str, who: str) -> str:
        """Sorted set of the sessions or jobs (``kind``) one key or client address holds."""
        return f"{self.prefix}:quota:{kind}:{who}"
