"""The gateway's side of clip jobs: submit within the bound, look a job up, wait for its answer.

A job is an upload (``upload``, with a TTL), a hash (``job``) and one entry on the ``clips``
stream, read by the workers' consumer group (:class:`service.queue.consumer.ClipConsumer`). The
worker that answers writes ``result`` once and pushes to ``done``, which waiting gateways block on;
it acks and deletes the entry, so the stream's length is the number of outstanding jobs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from service.keys import Keys
from service.queue._codec import as_float, as_int, as_json, dumps, now, text, text_hash
from service.queue.errors import JobNotFoundError, QueueFullError
from service.redis_conn import MAX_BLOCK_S
from service.settings import Settings

# KEYS: clips, upload, job. ARGV: max jobs, data, upload ttl, result ttl, job id, model, params,
# created, filename, size, submitted_by ('' for none: the field is left out). One script, so the
# bound holds however many gateways submit at once.
_SUBMIT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HSET', KEYS[3], 'state', 'queued', 'model', ARGV[6], 'params', ARGV[7],
           'created', ARGV[8], 'filename', ARGV[9], 'size', ARGV[10])
if ARGV[11] ~= '' then redis.call('HSET', KEYS[3], 'submitted_by', ARGV[11]) end
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[1], '*', 'job', ARGV[5])
return 1
"""

# A waiting gateway re-checks the result at least this often, so an expired job cannot hang it;
# within the client's read timeout (see service.redis_conn), so a full slice is not an error.
_WAIT_SLICE_S = MAX_BLOCK_S


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
        submitted_by: Identity of the caller that submitted it (``key:{name}``, or ``addr:{ip}``
            with auth off); ``None`` in records written before it was kept. The gateway shows a
            job only to its submitter (and to admin keys) when auth is on; never in an answer.
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
    submitted_by: str | None = None

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
        submitted_by=fields.get("submitted_by") or None,
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

    async def submit(
        self,
        data: bytes,
        model: str,
        params: dict[str, Any],
        filename: str,
        submitted_by: str | None = None,
    ) -> str:
        """Stores the upload and queues the job; returns the job id.

        Args:
            data: The upload.
            model: Model name.
            params: Parameters stored with it.
            filename: Name of the uploaded file.
            submitted_by: The caller's identity (:attr:`JobView.submitted_by`), recorded with it.

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
                submitted_by or "",
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
