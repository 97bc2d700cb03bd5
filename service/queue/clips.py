"""Clip jobs: the gateway submits and waits (asyncio), workers consume and answer (sync).

A job is an upload (``upload``, with a TTL), a hash (``job``) and one entry on the ``clips``
stream, read by the consumer group of the workers. A worker answers by writing ``result`` once
(SET NX) and, in the same script, marking the hash, pushing to ``done`` (which waiting gateways
block on) and acking and deleting the entry; so the stream's length is the number of outstanding
jobs, and a job that two workers run (one was slow, not dead) is still answered once.

Entries a worker took and never answered (it died) are reclaimed by the others with XAUTOCLAIM once
idle for ``reclaim_idle_ms``; an entry delivered more than ``max_deliveries`` times goes to the
dead-letter stream and its job fails with an error saying so.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from service.keys import CLIP_GROUP, DEAD_LETTER_MAXLEN, Keys
from service.queue._codec import as_float, as_int, as_json, dumps, now, text, text_hash
from service.queue.errors import (
    DEAD_LETTER,
    UPLOAD_EXPIRED,
    JobNotFoundError,
    QueueFullError,
    job_error,
    normalize_job_error,
)
from service.settings import Settings

# KEYS: clips, upload, job. ARGV: max jobs, data, upload ttl, result ttl, job id, model, params,
# created, filename, size. One script, so the bound holds however many gateways submit at once.
_SUBMIT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HSET', KEYS[3], 'state', 'queued', 'model', ARGV[6], 'params', ARGV[7],
           'created', ARGV[8], 'filename', ARGV[9], 'size', ARGV[10])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[1], '*', 'job', ARGV[5])
return 1
"""

# KEYS: job. ARGV: started, worker, deliveries. A job already answered stays answered.
_MARK_RUNNING = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'running', 'started', ARGV[1], 'worker', ARGV[2],
           'deliveries', ARGV[3])
return 1
"""

# KEYS: result, job, done, clips, upload. ARGV: result JSON, state, finished, result ttl, entry id,
# group, worker. The result is written once; the entry is acked and deleted either way.
_COMPLETE = """
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[4])
if fresh then
  redis.call('HSET', KEYS[2], 'state', ARGV[2], 'finished', ARGV[3], 'worker', ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
redis.call('XACK', KEYS[4], ARGV[6], ARGV[5])
redis.call('XDEL', KEYS[4], ARGV[5])
redis.call('DEL', KEYS[5])
if fresh then return 1 end
return 0
"""

# A waiting gateway re-checks the result at least this often, so an expired job cannot hang it.
_WAIT_SLICE_S = 5.0


@dataclass(frozen=True)
class JobView:
    """What the gateway knows about a clip job.

    Attributes:
        job_id: The job's id.
        state: ``queued``, ``running``, ``done`` or ``failed``.
        model: Model the job asked for.
        params: Parameters the gateway stored with it (top_k, sampling...).
        created: Submission time, unix seconds.
        started: When a worker started it (latest delivery), or ``None``.
        finished: When it was answered, or ``None``.
        worker: Worker that ran (or is running) it.
        filename: Name of the uploaded file.
        size: Bytes uploaded.
        deliveries: Times a worker took it.
        result: The stored answer once done or failed (``{"error": {...}}`` when failed).
    """

    job_id: str
    state: str
    model: str
    params: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    worker: str | None
    filename: str
    size: int
    deliveries: int
    result: dict[str, Any] | None

    @property
    def error(self) -> dict[str, Any] | None:
        """The error of a failed job: ``{"code", "message", ...}``."""
        if self.result is None:
            return None
        error = self.result.get("error")
        return error if isinstance(error, dict) else None


def _job_view(job_id: str, fields: dict[str, str], result: dict[str, Any] | None) -> JobView:
    return JobView(
        job_id=job_id,
        state=fields.get("state", "queued"),
        model=fields.get("model", ""),
        params=as_json(fields.get("params"), {}),
        created=as_float(fields.get("created")),
        started=as_float(fields["started"]) if fields.get("started") else None,
        finished=as_float(fields["finished"]) if fields.get("finished") else None,
        worker=fields.get("worker") or None,
        filename=fields.get("filename", ""),
        size=as_int(fields.get("size")),
        deliveries=as_int(fields.get("deliveries")),
        result=result,
    )


class ClipJobs:
    """The gateway's side of clip jobs.

    Args:
        redis: An asyncio client (raw bytes, see :mod:`service.redis_conn`).
        keys: Key names and TTLs.
        settings: ``queue_max_jobs`` and ``retry_after_s`` bound submissions;
            ``wait_timeout_s`` is the default wait.
    """

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._submit = redis.register_script(_SUBMIT)

    async def submit(self, data: bytes, model: str, params: dict[str, Any], filename: str) -> str:
        """Stores the upload and queues the job; returns the job id.

        Raises:
            QueueFullError: ``queue_max_jobs`` jobs are outstanding.
        """
        job_id = uuid.uuid4().hex
        accepted = await self._submit(
            keys=[self.keys.clips, self.keys.upload(job_id), self.keys.job(job_id)],
            args=[
                self.settings.queue_max_jobs,
                data,
                self.keys.upload_ttl_s,
                self.keys.result_ttl_s,
                job_id,
                model,
                dumps(params),
                now(),
                filename,
                len(data),
            ],
        )
        if not accepted:
            raise QueueFullError(self.settings.retry_after_s)
        return job_id

    async def depth(self) -> int:
        """Outstanding jobs (queued or running): the queue depth."""
        return int(await self.redis.xlen(self.keys.clips))

    async def job(self, job_id: str) -> JobView | None:
        """The job's state, with its result once answered; ``None`` for an unknown job."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.job(job_id))
            pipe.get(self.keys.result(job_id))
            raw_fields, raw_result = await pipe.execute()
        if not raw_fields:
            return None
        result = as_json(text(raw_result), None) if raw_result is not None else None
        return _job_view(job_id, text_hash(raw_fields), result)

    async def result(self, job_id: str) -> dict[str, Any] | None:
        """The stored answer, ``None`` while there is none."""
        raw = await self.redis.get(self.keys.result(job_id))
        return None if raw is None else as_json(text(raw), {})

    async def wait(self, job_id: str, timeout_s: float | None = None) -> dict[str, Any] | None:
        """Waits for the job's answer (``{"error": {...}}`` for a failed job).

        Returns:
            The answer, or ``None`` when ``timeout_s`` (default ``wait_timeout_s``) passed first.

        Raises:
            JobNotFoundError: No such job.
        """
        timeout = self.settings.wait_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        done_key = self.keys.done(job_id)
        while True:
            answer = await self.result(job_id)
            if answer is not None:
                return answer
            if not await self.redis.exists(self.keys.job(job_id)):
                raise JobNotFoundError(f"no clip job {job_id!r} (unknown or expired)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            popped = await self.redis.blpop([done_key], timeout=min(remaining, _WAIT_SLICE_S))
            if popped is not None:
                # Hand the wake-up on, so every gateway waiting on this job wakes too.
                await self.redis.rpush(done_key, popped[1])


@dataclass(frozen=True)
class ClipTask:
    """One clip job handed to a worker.

    Attributes:
        entry_id: The stream entry, to ack.
        job_id: The job.
        model: Model to run.
        params: The job's parameters.
        data: The uploaded bytes.
        deliveries: Times the job was handed to a worker, this one included.
        enqueued_s: Submission time, unix seconds (for the queue-wait figure).
        filename: Name of the uploaded file.
        size: Bytes uploaded.
    """

    entry_id: str
    job_id: str
    model: str
    params: dict[str, Any]
    data: bytes
    deliveries: int
    enqueued_s: float
    filename: str = ""
    size: int = 0


@dataclass
class ConsumerStats:
    """Counts of what a consumer did besides handing out tasks, for the worker's metrics."""

    reclaimed: int = 0
    dead_lettered: int = 0
    expired: int = 0
    missing: int = 0
    duplicates: int = 0


class ClipConsumer:
    """A worker's side of clip jobs (blocking client).

    Args:
        redis: A sync client (raw bytes, see :mod:`service.redis_conn`).
        keys: Key names and TTLs.
        worker_id: This worker's id, its consumer name in the group.
        settings: ``reclaim_idle_ms`` and ``max_deliveries``.
    """

    def __init__(self, redis: redis.Redis, keys: Keys, worker_id: str, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.reclaim_idle_ms = settings.reclaim_idle_ms
        self.max_deliveries = settings.max_deliveries
        self.stats = ConsumerStats()
        self._group_ready = False
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._in_flight: dict[str, None] = {}  # entry ids handed out and not answered, in order
        self._mark_running = redis.register_script(_MARK_RUNNING)
        self._complete = redis.register_script(_COMPLETE)

    def ensure_group(self) -> None:
        """Creates the stream and the consumer group if missing (from the start, so jobs
        submitted before any worker ran are read too)."""
        try:
            self.redis.xgroup_create(self.keys.clips, CLIP_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def read(self, count: int = 1, block_ms: int | None = None) -> list[ClipTask]:
        """Takes up to ``count`` jobs: reclaimed ones first (every ``reclaim_idle_ms / 2``), then
        new ones.

        Jobs whose upload expired are failed here (error ``upload_expired``) and not returned;
        jobs delivered more than ``max_deliveries`` times are dead-lettered.

        Args:
            count: Most tasks returned.
            block_ms: How long to wait for a new job when there is none; ``None`` or 0: no wait.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        if not self._group_ready:
            self.ensure_group()
        try:
            return self._read(count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was deleted under us (FLUSHDB); start afresh
            return self._read(count, block_ms)

    def _read(self, count: int, block_ms: int | None) -> list[ClipTask]:
        entries: list[tuple[str, dict[bytes, bytes], int]] = []
        if time.monotonic() >= self._next_reclaim:
            self.touch()  # what this worker still holds is not for reclaiming, by it or others
            entries.extend(self._reclaim(count))
        if len(entries) < count:
            block = block_ms if block_ms and not entries else None
            reply: Any = self.redis.xreadgroup(
                CLIP_GROUP,
                self.worker_id,
                {self.keys.clips: ">"},
                count=count - len(entries),
                block=block,
            )
            streams = reply.items() if isinstance(reply, dict) else (reply or [])
            for _stream, items in streams:
                entries.extend((text(entry_id), fields, 1) for entry_id, fields in items)
        return self._tasks(entries)

    def _reclaim(self, count: int) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Claims entries idle too long (their worker died), with their delivery counts."""
        reply = self.redis.xautoclaim(
            self.keys.clips,
            CLIP_GROUP,
            self.worker_id,
            min_idle_time=self.reclaim_idle_ms,
            start_id=self._cursor,
            count=count,
        )
        self._cursor = text(reply[0])
        if self._cursor == "0-0":  # scanned the whole pending list; rest until the next round
            self._next_reclaim = time.monotonic() + self.reclaim_idle_ms / 2000
        claimed = [(text(entry_id), fields) for entry_id, fields in reply[1]]
        # Redis 6.2 still returns entries deleted meanwhile, without fields; 7.x drops them.
        gone = [entry_id for entry_id, fields in claimed if not fields]
        if gone:
            self.redis.xack(self.keys.clips, CLIP_GROUP, *gone)
        claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
        if not claimed:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for entry_id, _ in claimed:
                pipe.xpending_range(
                    self.keys.clips, CLIP_GROUP, entry_id, entry_id, 1, self.worker_id
                )
            pending = pipe.execute()
        out = []
        for (entry_id, fields), info in zip(claimed, pending, strict=True):
            if not info:
                continue  # another worker claimed it in between
            deliveries = int(info[0]["times_delivered"])
            if deliveries > self.max_deliveries:
                self._dead_letter(entry_id, fields, deliveries)
            else:
                self.stats.reclaimed += 1
                out.append((entry_id, fields, deliveries))
        return out

    def _dead_letter(self, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> None:
        job_id = text(fields.get(b"job"))
        last_worker = text(self.redis.hget(self.keys.job(job_id), "worker")) or self.worker_id
        attempts = deliveries - 1
        error = job_error(
            DEAD_LETTER,
            f"clip job {job_id} was taken {attempts} times by workers that stopped before "
            f"answering (max_deliveries {self.max_deliveries}); it was moved to the dead-letter "
            "stream",
            500,
            deliveries=attempts,
        )
        self.redis.xadd(
            self.keys.dead_letter,
            {"job": job_id, "error": dumps(error), "deliveries": attempts, "worker": last_worker},
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        self._answer(entry_id, job_id, {"error": error}, "failed")
        self.stats.dead_lettered += 1

    def _tasks(self, entries: list[tuple[str, dict[bytes, bytes], int]]) -> list[ClipTask]:
        if not entries:
            return []
        job_ids = [text(fields.get(b"job")) for _, fields, _ in entries]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
                pipe.get(self.keys.upload(job_id))
            replies = pipe.execute()
        tasks = []
        for i, ((entry_id, _, deliveries), job_id) in enumerate(zip(entries, job_ids, strict=True)):
            raw_fields, data = replies[2 * i], replies[2 * i + 1]
            if not job_id or not raw_fields:
                # The job's record expired or never existed: nobody waits for an answer.
                self._discard(entry_id)
                self.stats.missing += 1
                continue
            fields = text_hash(raw_fields)
            if fields.get("state") in ("done", "failed"):
                # Answered meanwhile by a worker that was slow, not dead: nothing left to do.
                self._discard(entry_id)
                self.stats.duplicates += 1
                continue
            if data is None:
                self._expired(entry_id, job_id)
                continue
            tasks.append(
                ClipTask(
                    entry_id=entry_id,
                    job_id=job_id,
                    model=fields.get("model", ""),
                    params=as_json(fields.get("params"), {}),
                    data=bytes(data),
                    deliveries=deliveries,
                    enqueued_s=as_float(fields.get("created")),
                    filename=fields.get("filename", ""),
                    size=as_int(fields.get("size")),
                )
            )
            self._in_flight[entry_id] = None
        return tasks

    def _discard(self, entry_id: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.clips, CLIP_GROUP, entry_id)
            pipe.xdel(self.keys.clips, entry_id)
            pipe.execute()

    def _expired(self, entry_id: str, job_id: str) -> None:
        error = job_error(
            UPLOAD_EXPIRED,
            f"the upload of clip job {job_id} expired before a worker took it (kept "
            f"{self.keys.upload_ttl_s} s); submit the clip again",
            410,
        )
        self._answer(entry_id, job_id, {"error": error}, "failed")
        self.stats.expired += 1

    def mark_running(self, task: ClipTask) -> bool:
        """Records that this worker started the job; ``False`` if it was already answered
        (a duplicate delivery: the worker may skip it, and should still :meth:`finish` it)."""
        started = self._mark_running(
            keys=[self.keys.job(task.job_id)], args=[now(), self.worker_id, task.deliveries]
        )
        return bool(started)

    def finish(self, task: ClipTask, result: dict[str, Any]) -> bool:
        """Answers the job and acks its entry; ``False`` if it was already answered."""
        return self._answer(task.entry_id, task.job_id, result, "done")

    def fail(self, task: ClipTask, error: dict[str, Any]) -> bool:
        """Fails the job with ``{"error": error}`` and acks its entry; ``False`` if answered before.

        ``error`` is ``{"code", "message", ...}`` or an ``IngestError.to_dict()`` body.
        """
        return self._answer(
            task.entry_id, task.job_id, {"error": normalize_job_error(error)}, "failed"
        )

    @property
    def in_flight(self) -> int:
        """Tasks handed out by :meth:`read` and not yet finished or failed."""
        return len(self._in_flight)

    def touch(self, tasks: list[ClipTask] | None = None) -> None:
        """Resets the idle time of tasks still running (default: all in flight), so they are not
        reclaimed. :meth:`read` does it on every reclaim round; a worker busy for longer than
        ``reclaim_idle_ms`` between reads should call it from its heartbeat.
        """
        wanted = list(self._in_flight) if tasks is None else [t.entry_id for t in tasks]
        if not wanted:
            return
        # Only entries still pending here: one another worker reclaimed (this one looked dead)
        # stays with it rather than being claimed back.
        pending: Any = self.redis.xpending_range(
            self.keys.clips,
            CLIP_GROUP,
            "-",
            "+",
            len(self._in_flight) + len(wanted),
            self.worker_id,
        )
        mine = {text(p["message_id"]) for p in pending}
        entry_ids: list[Any] = [entry_id for entry_id in wanted if entry_id in mine]
        if entry_ids:
            # JUSTID: claiming without counting a delivery, which resets the idle time.
            self.redis.xclaim(
                self.keys.clips, CLIP_GROUP, self.worker_id, 0, entry_ids, justid=True
            )

    def _answer(self, entry_id: str, job_id: str, result: dict[str, Any], state: str) -> bool:
        fresh = self._complete(
            keys=[
                self.keys.result(job_id),
                self.keys.job(job_id),
                self.keys.done(job_id),
                self.keys.clips,
                self.keys.upload(job_id),
            ],
            args=[
                dumps(result),
                state,
                now(),
                self.keys.result_ttl_s,
                entry_id,
                CLIP_GROUP,
                self.worker_id,
            ],
        )
        self._in_flight.pop(entry_id, None)
        if not fresh:
            self.stats.duplicates += 1
        return bool(fresh)
