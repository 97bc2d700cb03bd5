"""The worker's side of clip jobs: take jobs, answer each once, reclaim what dead workers left.

Entries a worker took and never answered (it died) are taken over by the others as soon as its
heartbeat expires: each consumer checks the group's consumers against the worker directory every
heartbeat interval and XCLAIMs the pending entries of those without a heartbeat. As a safety net,
entries idle for ``reclaim_idle_ms`` are reclaimed with XAUTOCLAIM whoever holds them (a live
worker renews what it runs, see :meth:`ClipConsumer.touch`). An entry delivered more than
``max_deliveries`` times goes to the dead-letter stream and its job fails with an error saying so.
An answer is written once (SET NX) in the same script that marks the job, wakes its waiters and
acks and deletes its entry, so a job that two workers run (one was slow, not dead) is still
answered once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from service.keys import CLIP_GROUP, DEAD_LETTER_MAXLEN, Keys
from service.queue._codec import as_float, as_int, as_json, dumps, now, text, text_hash
from service.queue.errors import DEAD_LETTER, UPLOAD_EXPIRED, job_error, normalize_job_error
from service.settings import Settings

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
        settings: ``reclaim_idle_ms``, ``max_deliveries`` and ``heartbeat_interval_s`` (how
            often the consumers are checked for dead ones).
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
        self._next_dead_check = 0.0
        self.dead_check_s = settings.heartbeat_interval_s
        # A dead worker renewed its entries at its last beat, at least a TTL before it counts as
        # dead; two consumers taking over at once: the second finds them idle less than this.
        self.takeover_idle_ms = max(1, keys.heartbeat_ttl_ms // 2)
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
        if time.monotonic() >= self._next_dead_check:
            self._next_dead_check = time.monotonic() + self.dead_check_s
            entries.extend(self._take_over(count))
        if len(entries) < count and time.monotonic() >= self._next_reclaim:
            self.touch()  # what this worker still holds is not for reclaiming, by it or others
            entries.extend(self._reclaim(count - len(entries)))
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

    def dead_consumers(self) -> dict[str, int]:
        """Consumers of the group, other than this one, whose worker has no heartbeat, with
        their pending entries."""
        listed: Any = self.redis.xinfo_consumers(self.keys.clips, CLIP_GROUP)
        consumers = {
            text(c["name"]): int(c["pending"]) for c in listed if text(c["name"]) != self.worker_id
        }
        if not consumers:
            return {}
        with self.redis.pipeline(transaction=False) as pipe:
            for name in consumers:
                pipe.exists(self.keys.worker(name))
            alive = pipe.execute()
        return {
            name: pending
            for (name, pending), ok in zip(consumers.items(), alive, strict=True)
            if not ok
        }

    def _take_over(self, count: int) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Claims the pending entries of consumers whose worker's heartbeat expired."""
        out: list[tuple[str, dict[bytes, bytes], int]] = []
        for name, pending in self.dead_consumers().items():
            if len(out) >= count:
                break
            if pending == 0:
                # Nothing left to take over: the group forgets it (DELCONSUMER would drop
                # pending entries, so only now).
                self.redis.xgroup_delconsumer(self.keys.clips, CLIP_GROUP, name)
                continue
            held: Any = self.redis.xpending_range(
                self.keys.clips, CLIP_GROUP, "-", "+", count - len(out), name
            )
            entry_ids: list[Any] = [p["message_id"] for p in held]
            if not entry_ids:
                continue
            claimed: Any = self.redis.xclaim(
                self.keys.clips, CLIP_GROUP, self.worker_id, self.takeover_idle_ms, entry_ids
            )
            # Entries deleted meanwhile come back empty (6.2) or not at all (7.x).
            out.extend(self._with_deliveries([(text(c[0]), c[1]) for c in claimed if c]))
        return out

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
        return self._with_deliveries([(text(entry_id), fields) for entry_id, fields in reply[1]])

    def _with_deliveries(
        self, claimed: list[tuple[str, Any]]
    ) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Claimed entries with their delivery counts; those delivered too often are
        dead-lettered, those deleted meanwhile acked."""
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

    def release(self, tasks: list[ClipTask]) -> None:
        """Stops renewing tasks this worker will not answer (given back, or left unanswered when
        Redis failed mid-batch); their entries stay pending, so the group reclaims them once
        they have been idle for ``reclaim_idle_ms``."""
        for task in tasks:
            self._in_flight.pop(task.entry_id, None)

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
