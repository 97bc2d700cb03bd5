"""Clip jobs on a worker, in bounded units of work so that live sessions on the same worker keep
their pace.

Jobs taken from the queue wait here until done. Each :meth:`ClipWork.step` does one unit: decode
the next upload, or run a chunk of views through the model, as many views (of several jobs of one
model together, so small jobs still batch) as fit in about ``CLIP_SLICE_S`` at the cost measured
so far, at least one. The worker runs its live sessions between two units, so a clip of many
views (``clips=10, crops=3`` is 30) no longer holds them up for its whole length; a job's answer
is the mean of its views' probabilities, as in one forward.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import torch

from service import limits
from service.inference import ClipClassifier, ModelCatalog, ModelEntry, answer_from_views
from service.ingest import DecodedClip, IngestError, Sampling
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
from service.worker.decode import clip_decoder

log = logging.getLogger(__name__)

# One unit of clip work takes about this long (a view is the smallest unit: a model slower than
# this per view runs one view at a time). A frame that arrives during a unit waits for it: with 32
# streams beside a clips=10 crops=3 upload, 50 ms put live p95 at 104-107 ms, 35 ms at 75-84 ms
# (answering clips about a quarter slower), 25 ms at 54-56 ms (clips at under half the rate);
# docs/BENCHMARKS.md, the live section.
CLIP_SLICE_S = 0.035
# Views in the first chunk of a model, before its cost per view is known.
FIRST_CHUNK_VIEWS = 2
# Weight of the newest measurement in a model's cost per view.
COST_SMOOTHING = 0.3

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


@dataclass
class _Job:
    """A job taken from the queue and not answered yet.

    Attributes:
        task: The queue's task.
        ready: Its decoded upload, once decoded.
        views: Its views, checked against the model.
        probs: Softmax of each view run so far.
        inference_s: Model time spent on its views so far.
    """

    task: ClipTask
    ready: _Decoded | None = None
    views: list[np.ndarray] = field(default_factory=list)
    probs: list[torch.Tensor] = field(default_factory=list)
    inference_s: float = 0.0

    @property
    def views_done(self) -> int:
        return len(self.probs)


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
        self.decode = clip_decoder(settings)  # isolated, within CPU and memory budgets
        self.worker_id = worker_id
        self.served_elsewhere = served_elsewhere
        self.redis: redis.Redis = consumer.redis
        self.keys: Keys = consumer.keys
        self._requeue = self.redis.register_script(_REQUEUE)
        self.requeued = 0
        self.jobs: list[_Job] = []
        self.per_view_s: dict[str, float] = {}

    @property
    def busy(self) -> bool:
        """Whether jobs wait here for more work."""
        return bool(self.jobs)

    @property
    def tasks(self) -> list[ClipTask]:
        """The tasks taken and not answered yet (the heartbeat renews them)."""
        return [job.task for job in self.jobs]

    def add(self, tasks: list[ClipTask]) -> None:
        """Takes on jobs read from the queue; :meth:`step` works through them."""
        self.jobs.extend(_Job(task) for task in tasks)

    def run(self, tasks: list[ClipTask]) -> int:
        """Answers every task, unit after unit, without a break for anything else.

        Returns:
            How many went back to the queue for a worker that holds their model.
        """
        requeued = self.requeued
        self.add(tasks)
        while self.busy:
            self.step()
        return self.requeued - requeued

    def step(self) -> None:
        """One unit of work: decode the next upload, or else run a chunk of views of the
        first waiting job's model (and answer the jobs whose views are all done)."""
        job = next((j for j in self.jobs if j.ready is None), None)
        if job is not None:
            self._decode_job(job)
            return
        if self.jobs:
            ready = self.jobs[0].ready
            assert ready is not None
            self._run_chunk(ready.entry)

    def _decode_job(self, job: _Job) -> None:
        task = job.task
        try:
            ready = self._decode(task)
            if ready is not None:
                job.views = self.classifier.views(ready.decoded.views, ready.entry)
                job.ready = ready
        except redis.RedisError:
            raise
        except Exception as exc:  # a bug on one job must not cost the others their answer
            log.exception("clip job %s failed before inference", task.job_id)
            self._fail(task, task.model, internal_error(INTERNAL, exc))
            ready = None
        if ready is None:  # answered (or sent back to the queue) already
            self.jobs.remove(job)

    def _chunk_size(self, name: str) -> int:
        per_view = self.per_view_s.get(name)
        if per_view is None:
            return FIRST_CHUNK_VIEWS
        return max(1, min(self.classifier.max_batch, int(CLIP_SLICE_S / max(per_view, 1e-6))))

    def _run_chunk(self, entry: ModelEntry) -> None:
        """Runs the next views of the jobs of ``entry``'s model, in queue order."""
        size = self._chunk_size(entry.name)
        parts: list[tuple[_Job, int, int]] = []  # (job, first view, end)
        for job in self.jobs:
            if len(parts) and sum(end - first for _, first, end in parts) >= size:
                break
            if job.ready is None or job.ready.entry.name != entry.name:
                continue
            taken = sum(end - first for _, first, end in parts)
            first = job.views_done
            end = min(len(job.views), first + size - taken)
            parts.append((job, first, end))
        views = [view for job, first, end in parts for view in job.views[first:end]]
        started = time.perf_counter()
        try:
            probs = self.classifier.probabilities(entry, views)
        except Exception as exc:
            self._chunk_failed(entry, parts, exc)
            return
        seconds = time.perf_counter() - started
        old = self.per_view_s.get(entry.name)
        per_view = seconds / len(views)
        self.per_view_s[entry.name] = (
            per_view if old is None else old + COST_SMOOTHING * (per_view - old)
        )
        offset = 0
        for job, first, end in parts:
            count = end - first
            job.probs.extend(probs[offset : offset + count])
            job.inference_s += seconds * count / len(views)
            offset += count
            if job.views_done == len(job.views):
                self.jobs.remove(job)
                self._answer(job)

    def _chunk_failed(
        self, entry: ModelEntry, parts: list[tuple[_Job, int, int]], exc: Exception
    ) -> None:
        """A chunk that broke: its jobs are tried alone, so only the one that breaks fails."""
        if len(parts) > 1:
            log.warning(
                "clip views of %d jobs on %s failed (%s); one by one", len(parts), entry.name, exc
            )
            for job, first, end in parts:
                try:
                    job.probs.extend(self.classifier.probabilities(entry, job.views[first:end]))
                except Exception as one:
                    self._inference_failed(job, one)
                    continue
                if job.views_done == len(job.views):
                    self.jobs.remove(job)
                    self._answer(job)
            return
        self._inference_failed(parts[0][0], exc)

    def _inference_failed(self, job: _Job, exc: Exception) -> None:
        log.error("clip job %s failed in inference: %s", job.task.job_id, exc)
        self.jobs.remove(job)
        assert job.ready is not None
        self._fail(job.task, job.ready.entry.name, internal_error(INFERENCE_FAILED, exc))

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
            # The gateway's bounds (service/limits.py), for a job it did not check itself.
            top_k = _int_param(params, "top_k", limits.DEFAULT_TOP_K, 1, limits.MAX_TOP_K)
            clips = _int_param(params, "clips", limits.DEFAULT_CLIPS, 1, limits.MAX_CLIPS)
            crops = _int_param(params, "crops", limits.DEFAULT_CROPS, 1, max(limits.CROPS))
            if crops not in limits.CROPS:
                raise ValueError(f"crops must be one of {limits.CROPS}, got {crops}")
            sampling = Sampling(num_frames=entry.frames, num_clips=clips, num_crops=crops)
        except ValueError as exc:
            self._fail(task, name, job_error(INVALID_REQUEST, str(exc), 422), "rejected")
            return None
        short_side = entry.config.preprocessing.resize_size
        try:
            decoded = self.decode(task.data, sampling, short_side=short_side)
        except IngestError as exc:
            self._fail(task, name, ingest_error(exc), "rejected")
            return None
        self.metrics.decode_seconds.observe(decoded.decode_seconds)
        return _Decoded(task, entry, decoded, top_k, clips, crops, started)

    def _answer(self, job: _Job) -> None:
        ready = job.ready
        assert ready is not None
        answer = answer_from_views(
            ready.entry, torch.stack(job.probs), ready.top_k, job.inference_s * 1000.0
        )
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
            ready.entry.name,
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
