"""Clip jobs on a worker: decode each upload, classify the jobs of one model in one batch.

A job answers once: its labels, or its error. A refused upload (an ``IngestError`` from
decoding) fails that job with the 4xx the gateway would have answered; anything unexpected fails
it with a 500. Neither touches the other jobs of the batch, and nothing here kills the worker.
A job for a model this worker does not hold goes back on the queue when another live worker
advertises the model, and fails with ``unknown_model`` (404) when none does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from service.inference import ClipClassifier, ModelCatalog, ModelEntry
from service.ingest import DecodedClip, IngestError, Sampling, decode_clip
from service.keys import CLIP_GROUP, Keys
from service.metrics import WorkerMetrics
from service.queue import ClipConsumer, ClipTask, job_error
from service.settings import Settings
from service.worker.answers import (
    INFERENCE_FAILED,
    INTERNAL,
    INVALID_REQUEST,
    UNKNOWN_MODEL,
    clip_answer,
    ingest_error,
    internal_error,
)

log = logging.getLogger(__name__)

MAX_TOP_K = 100

# KEYS: clips, job. ARGV: entry id, group, job id. Puts a job back at the end of the queue for a
# worker that holds its model: a fresh entry, the old one acked and deleted.
_REQUEUE = """
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'state', 'queued')
end
return redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
"""


@dataclass(frozen=True)
class _Decoded:
    """A job ready for its model."""

    task: ClipTask
    entry: ModelEntry
    decoded: DecodedClip
    top_k: int
    clips: int
    crops: int
    started_s: float


def _int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


class ClipWork:
    """Runs batches of clip jobs taken by a :class:`ClipConsumer`.

    Args:
        consumer: The worker's consumer (answers and acks).
        catalog: The loaded models.
        metrics: The worker's metrics.
        settings: Clip limits.
        worker_id: This worker, named in the answers.
        served_elsewhere: Whether another live worker advertises a model (for jobs this worker
            cannot run).
    """

    def __init__(
        self,
        consumer: ClipConsumer,
        catalog: ModelCatalog,
        metrics: WorkerMetrics,
        settings: Settings,
        worker_id: str,
        served_elsewhere: Callable[[str], bool],
    ) -> None:
        self.consumer = consumer
        self.catalog = catalog
        self.classifier = ClipClassifier(catalog)
        self.metrics = metrics
        self.limits = settings.clip_limits()
        self.worker_id = worker_id
        self.served_elsewhere = served_elsewhere
        self.redis: redis.Redis = consumer.redis
        self.keys: Keys = consumer.keys
        self._requeue = self.redis.register_script(_REQUEUE)
        self.requeued = 0

    def run(self, tasks: list[ClipTask]) -> int:
        """Answers every task: decoded one by one, classified in one call per model.

        Returns:
            How many went back to the queue for a worker that holds their model.
        """
        requeued = self.requeued
        by_model: dict[str, list[_Decoded]] = {}
        for task in tasks:
            try:
                ready = self._decode(task)
            except redis.RedisError:
                raise
            except Exception as exc:  # a bug on one job must not cost the others their answer
                log.exception("clip job %s failed before inference", task.job_id)
                self._fail(task, task.model, internal_error(INTERNAL, exc))
                continue
            if ready is not None:
                by_model.setdefault(ready.entry.name, []).append(ready)
        for name, group in by_model.items():
            self._classify(name, group)
        return self.requeued - requeued

    def _decode(self, task: ClipTask) -> _Decoded | None:
        """Starts a job and decodes its upload; ``None`` when it is answered already."""
        name = task.model or self.catalog.clip_default.name
        if name not in self.catalog:
            self._not_here(task, name)
            return None
        entry = self.catalog.get(name)
        if not self.consumer.mark_running(task):
            # Answered meanwhile (it ran twice): ack it without a second answer.
            self.consumer.finish(task, {})
            self.metrics.observe_clip_job(name, "duplicate")
            return None
        started = time.time()
        try:
            params = task.params if isinstance(task.params, dict) else {}
            top_k = _int_param(params, "top_k", 5, 1, MAX_TOP_K)
            clips = _int_param(params, "clips", 1, 1, 100)
            crops = _int_param(params, "crops", 1, 1, 3)
            sampling = Sampling(num_frames=entry.frames, num_clips=clips, num_crops=crops)
        except ValueError as exc:
            self._fail(task, name, job_error(INVALID_REQUEST, str(exc), 422), "rejected")
            return None
        short_side = entry.config.preprocessing.resize_size
        try:
            decoded = decode_clip(task.data, sampling, self.limits, short_side=short_side)
        except IngestError as exc:
            self._fail(task, name, ingest_error(exc), "rejected")
            return None
        self.metrics.decode_seconds.observe(decoded.decode_seconds)
        return _Decoded(task, entry, decoded, top_k, clips, crops, started)

    def _classify(self, name: str, group: list[_Decoded]) -> None:
        top_k = max(d.top_k for d in group)
        try:
            answers = self.classifier.classify(name, [d.decoded.views for d in group], top_k)
        except Exception as exc:
            if len(group) > 1:
                # Find the clip that broke the batch; the others still get their answers.
                log.warning("clip batch of %d on %s failed (%s); one by one", len(group), name, exc)
                for one in group:
                    self._classify(name, [one])
                return
            log.exception("clip job %s failed in inference", group[0].task.job_id)
            self._fail(group[0].task, name, internal_error(INFERENCE_FAILED, exc))
            return
        for ready, answer in zip(group, answers, strict=True):
            result = clip_answer(
                ready.task,
                ready.decoded,
                answer,
                top_k=ready.top_k,
                clips=ready.clips,
                crops=ready.crops,
                started_s=ready.started_s,
                finished_s=time.time(),
                worker_id=self.worker_id,
            )
            fresh = self.consumer.finish(ready.task, result)
            self.metrics.observe_clip_job(
                name,
                "done" if fresh else "duplicate",
                inference_s=answer.inference_ms / 1000.0,
                gmacs=answer.gmacs,
                frames=answer.frames,
            )

    def _fail(
        self, task: ClipTask, model: str, error: dict[str, Any], status: str = "failed"
    ) -> None:
        fresh = self.consumer.fail(task, error)
        self.metrics.observe_clip_job(model, status if fresh else "duplicate")

    def _not_here(self, task: ClipTask, name: str) -> None:
        """A model this worker does not hold: back on the queue, or refused when nobody has it."""
        if self.served_elsewhere(name):
            self._requeue(
                keys=[self.keys.clips, self.keys.job(task.job_id)],
                args=[task.entry_id, CLIP_GROUP, task.job_id],
            )
            self.consumer.release([task])
            self.requeued += 1
            return
        known = ", ".join(self.catalog.names)
        message = f"unknown model {name!r}: no live worker serves it; known models: {known}"
        self._fail(task, name, job_error(UNKNOWN_MODEL, message, 404), "rejected")
