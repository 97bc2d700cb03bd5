"""The Redis queue between gateway and workers: clip jobs, sessions, events and heartbeats.

Gateway side (``redis.asyncio`` clients): :class:`ClipJobs`, :class:`SessionDirectory`,
:class:`EventReader`, :class:`EventFanout` (one shared blocking read of every followed session's
events), :class:`WorkerDirectory`. Worker side (blocking clients):
:class:`ClipConsumer`, :class:`SessionInbox` (with :class:`EventWriter`), :class:`WorkerRegistry`.
Import them from here; the modules are an implementation detail. Key names and TTLs come
from :class:`service.keys.Keys`; every refusal is a :class:`QueueError` subclass with a ``code``
and an ``http_status``.
"""

from service.queue.clips import ClipJobs, JobView
from service.queue.consumer import ClipConsumer, ClipTask, ConsumerStats
from service.queue.errors import (
    DEAD_LETTER,
    UPLOAD_EXPIRED,
    JobNotFoundError,
    NoWorkerError,
    QueueError,
    QueueFullError,
    SessionClosedError,
    SessionNotFoundError,
    job_error,
)
from service.queue.events import EventReader, EventWriter
from service.queue.fanout import EventFanout, Subscription
from service.queue.inbox import Adoption, SessionInbox, SessionMessage
from service.queue.limits import Holdings, RateLimiter, Verdict
from service.queue.sessions import (
    FINAL_STATES,
    KINDS,
    STATES,
    SessionDirectory,
    SessionInfo,
    choose_owner,
)
from service.queue.workers import WorkerDirectory, WorkerInfo, WorkerRegistry

__all__ = [
    "DEAD_LETTER",
    "FINAL_STATES",
    "KINDS",
    "STATES",
    "UPLOAD_EXPIRED",
    "Adoption",
    "ClipConsumer",
    "ClipJobs",
    "ClipTask",
    "ConsumerStats",
    "EventFanout",
    "EventReader",
    "EventWriter",
    "Holdings",
    "JobNotFoundError",
    "JobView",
    "NoWorkerError",
    "QueueError",
    "QueueFullError",
    "RateLimiter",
    "SessionClosedError",
    "SessionDirectory",
    "SessionInbox",
    "SessionInfo",
    "SessionMessage",
    "SessionNotFoundError",
    "Subscription",
    "Verdict",
    "WorkerDirectory",
    "WorkerInfo",
    "WorkerRegistry",
    "choose_owner",
    "job_error",
]
