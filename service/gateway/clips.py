"""``POST /v1/clips`` and ``GET /v1/jobs/{id}``: clip uploads answered by the worker pool.

The gateway refuses what it can cheaply before a job exists: a body over the size limit (413,
checked while the upload streams in, so an oversized upload never fills the disk), something that
is not a video of an accepted container and codec (``probe_clip`` reads the index and one frame),
a model no live worker serves (404), a full queue (429 with Retry-After). Decoding and inference
happen in the worker.

A job belongs to the caller that submitted it (its principal's ``who``, recorded as
``submitted_by``), by the rule sessions follow (:func:`service.gateway.auth.may_see`): with auth
on, ``GET /v1/jobs/{id}`` answers another key's job exactly as an unknown one (404
``job_not_found``), unless the key has the ``admin`` scope. With auth off every caller sees every
job.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from service import limits, wire
from service.gateway.auth import caller, may_see
from service.gateway.catalog import LiveCatalog
from service.gateway.errors import ApiError, error_body, job_error_status
from service.gateway.responses import answer, errors, relay
from service.gateway.state import Gateway, get_gateway
from service.ingest import probe_clip
from service.queue import JobView
from service.settings import Settings

log = logging.getLogger(__name__)

# Scope key naming the route template for request metrics when a middleware answers before routing.
ROUTE_SCOPE_KEY = "vidrec.route"
# Multipart framing and the small form fields around the file, on top of max_upload_bytes.
FORM_OVERHEAD_BYTES = 64 * 1024


def _one_or_three(value: int) -> int:
    if value not in limits.CROPS:
        raise ValueError("must be 1 (the full frame) or 3 (three square crops)")
    return value


class ClipForm(BaseModel):
    """The form of ``POST /v1/clips``: the file and its parameters; any other field is refused
    (a typo such as ``topk`` would otherwise be ignored)."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="The video (mp4, mkv, webm, avi, mov)")
    model: str | None = Field(
        default=None,
        max_length=limits.MAX_NAME_CHARS,
        description="Model name; default: the deployment's clip model",
    )
    top_k: int = Field(
        default=limits.DEFAULT_TOP_K, ge=1, le=limits.MAX_TOP_K, description="Labels to return"
    )
    clips: int = Field(
        default=limits.DEFAULT_CLIPS,
        ge=1,
        le=limits.MAX_CLIPS,
        description="Temporal views, each a forward pass",
    )
    crops: Annotated[int, AfterValidator(_one_or_three)] = Field(
        default=limits.DEFAULT_CROPS, description="Spatial views: 1 (the full frame) or 3"
    )
    wait: bool = Field(default=True, description="Wait for the answer (true) or answer 202 at once")


def _accepted(job_id: str, state: str) -> JSONResponse:
    body = wire.build(
        wire.JobAccepted, {"job_id": job_id, "status": state, "status_url": f"/v1/jobs/{job_id}"}
    )
    return answer(body, 202)


def _answer(job_id: str, result: dict[str, Any]) -> JSONResponse:
    """A finished job's answer: the result, or its error with the matching status. The result
    is the worker's, parsed leniently (a newer worker's fields pass through)."""
    error = result.get("error")
    if isinstance(error, dict):
        status = job_error_status(error)
        code = str(error.get("code", "error"))
        message = str(error.get("message", "the job failed"))
        extra = {
            k: v for k, v in error.items() if k not in ("code", "message", "http_status", "status")
        }
        return JSONResponse(error_body(code, message, job_id=job_id, **extra), status_code=status)
    return relay(wire.ClipAnswer, {**result, "job_id": job_id})


def _job_body(view: JobView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": view.job_id,
        "status": view.state,
        "model": view.model,
        "params": view.params,
        "filename": view.filename,
        "size": view.size,
        "created": view.created,
        "started": view.started,
        "finished": view.finished,
        "worker": view.worker,
        "deliveries": view.deliveries,
    }
    if view.error is not None:
        body["error"] = {
            "code": str(view.error.get("code", "error")),
            "message": str(view.error.get("message", "the job failed")),
            "http_status": job_error_status(view.error),
        }
    elif view.result is not None:
        body["result"] = view.result
    return body


def router(settings: Settings) -> APIRouter:
    """The clip routes; the body limit is fixed here from ``settings.max_upload_bytes``."""
    api = APIRouter(tags=["clips"])
    max_upload = settings.max_upload_bytes
    clip_limits = settings.clip_limits()

    @api.post(
        "/v1/clips",
        response_model=wire.ClipAnswer,
        responses={
            202: {"model": wire.JobAccepted, "description": "Queued or running; poll status_url"},
            **errors(404, 410, 413, 415, 422),
        },
        summary="Classify an uploaded clip",
    )
    async def post_clip(
        form: Annotated[ClipForm, Form()], gw: Annotated[Gateway, Depends(get_gateway)]
    ) -> JSONResponse:
        """Upload a clip; answers the labels (or 202 with a job id when ``wait`` is false)."""
        file, model, wait = form.file, form.model, form.wait
        if file.size is not None and file.size > max_upload:
            raise _too_large(file.size, max_upload)
        data = await file.read()
        if len(data) > max_upload:
            raise _too_large(len(data), max_upload)
        # The cheap check first: a model nobody serves is refused before the clip is probed.
        catalog = LiveCatalog.of(await gw.workers.live())
        name = catalog.resolve(model or None, "clip", settings.clip_model)
        info = await run_in_threadpool(probe_clip, data, clip_limits)
        params = wire.JobParams(
            top_k=form.top_k, clips=form.clips, crops=form.crops, probe=wire.VideoInfo.of(info)
        ).wire()
        job_id = await gw.limits.hold(  # within the caller's quota of outstanding jobs
            "clips",
            lambda: gw.jobs.submit(
                data, name, params, file.filename or "upload", submitted_by=caller()
            ),
            str,
        )
        if not wait:
            return _accepted(job_id, "queued")
        try:
            done = await gw.jobs.wait(job_id, settings.wait_timeout_s)
            if done is None:
                view = await gw.jobs.job(job_id)
                return _accepted(job_id, view.state if view else "queued")
        except redis.RedisError as exc:
            # The job is queued: a refusal without its id would make the client submit it again.
            raise _lost_wait(job_id, exc) from exc
        return _answer(job_id, done)

    @api.get(
        "/v1/jobs/{job_id}",
        response_model=wire.JobView,
        responses=errors(404, 422, s404="Unknown or expired job"),
        summary="A clip job's state and result",
    )
    async def get_job(job_id: str, gw: Annotated[Gateway, Depends(get_gateway)]) -> JSONResponse:
        """The job's state; its result (or error) once answered. With auth on, a job submitted
        with another key answers as an unknown one (an admin key sees every job)."""
        view = await gw.jobs.job(job_id)
        if view is None or not may_see(view.submitted_by):  # another key's job: as if unknown
            raise ApiError(404, "job_not_found", f"no clip job {job_id!r} (unknown or expired)")
        return relay(wire.JobView, _job_body(view))

    return api


def _lost_wait(job_id: str, exc: redis.RedisError) -> ApiError:
    log.warning("waiting for clip job %s: redis error: %s", job_id, exc)
    return ApiError(
        503,
        "redis_unavailable",
        f"the job {job_id} was queued, but waiting for its answer failed (the queue, Redis, is "
        "not reachable); poll its status_url instead of submitting it again",
        headers={"Retry-After": "1"},
        job_id=job_id,
        status_url=f"/v1/jobs/{job_id}",
    )


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the upload has {size} bytes; at most {limit} ({limit / 2**20:.1f} MiB) are accepted",
        max_bytes=limit,
    )
