"""The JSON a worker writes: clip answers, job errors and session events.

Every answer is built through its model in ``service/wire.py`` (``wire.build``: a field the
contract does not name, or a missing one, fails here rather than in a client), so the gateway,
the SDK and the docs read the shapes this module writes. A clip answer is a
:class:`service.wire.ClipAnswer`::

    {"job_id", "model", "labels": [{"label", "score"}],
     "sampled": {"frames", "views", "clips", "crops", "indices", "timestamps_s",
                 "frames_decoded", "clip": {"container", "codec", "width", "height",
                 "rotation", "num_frames", "duration_s", "fps"}},
     "timing_ms": {"queue_wait", "decode", "inference", "total"},
     "compute": {"gmacs", "frames"}, "worker", "deliveries"}

A labels event (:class:`service.wire.LabelsEvent`) carries the same ``timing_ms`` breakdown
for its newest frame, and its ``compute``. A failed job's answer is
``{"error": {"code", "message", "http_status"}}`` (written by ``ClipConsumer.fail``).
"""

from __future__ import annotations

from typing import Any

from service import wire
from service.inference import ClipAnswer, LiveEvent
from service.ingest import DecodedClip, IngestError
from service.queue import ClipTask, job_error

INTERNAL = "internal"
INFERENCE_FAILED = "inference_failed"
INVALID_REQUEST = "invalid_request"
UNKNOWN_MODEL = "unknown_model"


def clip_answer(
    task: ClipTask,
    decoded: DecodedClip,
    answer: ClipAnswer,
    *,
    top_k: int,
    clips: int,
    crops: int,
    started_s: float,
    finished_s: float,
    worker_id: str,
) -> dict[str, Any]:
    """The answer of a clip job that ran.

    Args:
        task: The job.
        decoded: What was decoded from its upload.
        answer: What the classifier said.
        top_k: Labels asked for.
        clips: Temporal views asked for.
        crops: Spatial views asked for.
        started_s: When this worker started the job (unix seconds).
        finished_s: When the answer was ready (unix seconds).
        worker_id: This worker.
    """
    enqueued = task.enqueued_s or started_s
    frames_per_view = int(decoded.views.shape[1])
    fields = {
        "job_id": task.job_id,
        "model": answer.model,
        "labels": [{"label": label, "score": score} for label, score in answer.labels[:top_k]],
        "sampled": {
            "frames": frames_per_view,
            "views": answer.views,
            "clips": clips,
            "crops": crops,
            "indices": decoded.frame_indices.tolist(),
            "timestamps_s": [[round(t, 4) for t in row] for row in decoded.timestamps_s.tolist()],
            "frames_decoded": decoded.frames_decoded,
            "clip": wire.VideoInfo.of(decoded.info),
        },
        "timing_ms": {
            "queue_wait": max(0.0, started_s - enqueued) * 1000.0,
            "decode": decoded.decode_seconds * 1000.0,
            "inference": answer.inference_ms,
            "total": max(0.0, finished_s - enqueued) * 1000.0,
        },
        "compute": {"gmacs": answer.gmacs, "frames": answer.frames},
        "worker": worker_id,
        "deliveries": task.deliveries,
    }
    return wire.build(wire.ClipAnswer, fields).wire()


def ingest_error(exc: IngestError) -> dict[str, Any]:
    """A refused upload, with the 4xx the gateway would have answered itself."""
    return job_error(exc.code, exc.message, exc.http_status)


def internal_error(code: str, exc: BaseException) -> dict[str, Any]:
    """A job that failed on the worker's side (5xx); the message names the exception."""
    detail = str(exc) or type(exc).__name__
    return job_error(code, f"the worker failed on this clip: {type(exc).__name__}: {detail}", 500)


def labels_event(
    event: LiveEvent,
    *,
    latency_ms: float,
    dropped: int,
    input_index: int | None,
    queue_wait_ms: float = 0.0,
    decode_ms: float = 0.0,
    inference_ms: float = 0.0,
) -> dict[str, Any]:
    """A ``labels`` event: the runner's fields plus what the worker knows.

    Args:
        event: The runner's event.
        latency_ms: From the newest frame's arrival (gateway receive time, or the RTSP reader's
            decode time) to now; ``timing_ms.total``.
        dropped: Frames of the session the workers dropped so far.
        input_index: The newest frame's index as numbered by the gateway (or the RTSP reader);
            ``frame_index`` counts processed frames, which differ once frames are dropped.
        queue_wait_ms: From the newest frame's arrival until its step started.
        decode_ms: Decoding the newest frame (0 for an RTSP frame: its reader decoded it
            before it counted as arrived).
        inference_ms: The batched model step the newest frame was in (the frame waited all
            of it; ``compute`` says what this session's share cost).
    """
    body = event.to_dict()
    body["model"] = event.model
    body["latency_ms"] = latency_ms
    body["timing_ms"] = {
        "queue_wait": queue_wait_ms,
        "decode": decode_ms,
        "inference": inference_ms,
        "total": latency_ms,
    }
    body["dropped"] = dropped
    body["input_index"] = input_index
    return wire.build(wire.LabelsEvent, body).wire()


def session_event(fields: dict[str, Any]) -> dict[str, Any]:
    """Any other event of a session (``moved``, ``source``, ``expired``...) checked against its
    model in ``service/wire.py`` by its ``type``.

    Raises:
        KeyError: A type the contract does not know.
    """
    return wire.build(wire.EVENT_TYPES[fields["type"]], fields).wire()


def error_event(session_id: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An ``error`` event: a bad frame or message; the session goes on."""
    fields = {"session_id": session_id, "code": code, "message": message, **extra}
    return wire.build(wire.ErrorEvent, fields).wire()
