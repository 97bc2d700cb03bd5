"""The asyncio client: clips, jobs, live streams, RTSP sessions, models (httpx and websockets).

``Client`` (vidrec/client.py) runs this one on a private event loop, so both behave alike; live
streams are in vidrec/live.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from os import PathLike
from pathlib import Path
from typing import IO, Any, Literal, overload

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from service.budget import check_budget
from service.wire import (
    ClipAnswer,
    ErrorEvent,
    Event,
    Health,
    JobAccepted,
    JobView,
    ModelList,
    Readiness,
    SessionList,
    SessionView,
    parse_event,
)
from vidrec._config import (
    NOT_SENT,
    RetryPolicy,
    auth_headers,
    resolve_api_key,
    resolve_url,
    ws_url,
)
from vidrec.errors import (
    JobTimeoutError,
    ServiceUnavailableError,
    TransportError,
    api_error,
    error_from_event,
    error_from_response,
)
from vidrec.live import FINAL_EVENTS, AsyncLiveStream, BudgetLike, handshake_error

Video = str | PathLike[str] | bytes | IO[bytes]
"""A clip to upload: a path, the file's bytes, or a binary file object."""

DEFAULT_TIMEOUT_S = 120.0
JOB_POLL_S = 0.2


def _upload(video: Video, filename: str | None) -> tuple[str, bytes]:
    """The file name and bytes of an upload (read whole: a retry must send it again)."""
    if isinstance(video, bytes | bytearray):
        return filename or "upload.mp4", bytes(video)
    if isinstance(video, str | PathLike):
        path = Path(video)
        if not path.is_file():
            raise ValueError(f"no file at {path}")
        return filename or path.name, path.read_bytes()
    name = filename or Path(str(getattr(video, "name", "upload.mp4"))).name
    return name, video.read()


def _budget_text(budget: BudgetLike) -> str:
    return json.dumps(check_budget(budget))


class AsyncClient:
    """An asyncio client of a vidrec server.

    Args:
        url: The server; default ``$VIDREC_URL``, else ``http://127.0.0.1:8000``.
        api_key: Sent as ``Authorization: Bearer``; default ``$VIDREC_API_KEY``.
        timeout: Seconds for one HTTP request (an upload waits for its answer within it).
        retry: How 429/503 answers and unreachable servers are retried.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.url = resolve_url(url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._headers = auth_headers(resolve_api_key(api_key))
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=self._headers)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP request with the retry policy; the answer, or an error.

        A request that is not ``idempotent`` is repeated only when it never reached the server
        or the server answered 429 or 503 without accepting it (no ``job_id`` in the body).

        Raises:
            ApiError: A refusal (after the retries).
            TransportError: The server could not be reached (after the retries), or the
                connection broke after the request was sent.
        """
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except NOT_SENT as exc:
                if attempt >= self.retry.max_retries:
                    raise TransportError(f"cannot reach {self.url}: {exc}") from exc
            except httpx.HTTPError as exc:
                # Sent, perhaps received: repeat it only when that cannot do anything twice.
                if not idempotent or attempt >= self.retry.max_retries:
                    raise TransportError(f"{method} {path} on {self.url} failed: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                error = error_from_response(response)
                retry = self.retry.should_retry(response.status_code, idempotent)
                if not idempotent and "job_id" in error.body:
                    retry = False  # accepted after all: a repeat would submit it twice
                if not retry or attempt >= self.retry.max_retries:
                    raise error
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after_s))
                attempt += 1
                continue
            await asyncio.sleep(self.retry.delay(attempt, None))
            attempt += 1

    # Clips and jobs.

    @overload
    async def classify(
        self,
        video: Video,
        *,
        model: str | None = ...,
        top_k: int = ...,
        clips: int = ...,
        crops: int = ...,
        wait: Literal[True] = ...,
        filename: str | None = ...,
    ) -> ClipAnswer: ...

    @overload
    async def classify(
        self,
        video: Video,
        *,
        model: str | None = ...,
        top_k: int = ...,
        clips: int = ...,
        crops: int = ...,
        wait: Literal[False],
        filename: str | None = ...,
    ) -> JobAccepted: ...

    async def classify(
        self,
        video: Video,
        *,
        model: str | None = None,
        top_k: int = 5,
        clips: int = 1,
        crops: int = 1,
        wait: bool = True,
        filename: str | None = None,
    ) -> ClipAnswer | JobAccepted:
        """Uploads a clip (``POST /v1/clips``) and returns its labels, timing and compute.

        Args:
            video: A path, the file's bytes, or a binary file object.
            model: A model from :meth:`models`; default: the server's clip model.
            top_k: Labels to return.
            clips: Temporal views (scores averaged).
            crops: Spatial views: 1 (the full frame) or 3.
            wait: ``False``: return the queued job at once (:class:`JobAccepted`).
            filename: Name sent with the upload; default: the path's.

        Raises:
            ApiError: A refusal, or the job failed (with the status of its code).
            JobTimeoutError: Not answered within the client's timeout.
        """
        name, data = await asyncio.to_thread(_upload, video, filename)
        form = {"top_k": str(top_k), "clips": str(clips), "crops": str(crops)}
        form["wait"] = "true" if wait else "false"
        if model:
            form["model"] = model
        files = {"file": (name, data, "application/octet-stream")}
        try:
            response = await self.request(
                "POST", "/v1/clips", idempotent=False, data=form, files=files
            )
        except ServiceUnavailableError as exc:
            # Accepted, then the wait failed (Redis went away): follow the job, never resubmit.
            job_id = exc.body.get("job_id")
            if not isinstance(job_id, str):
                raise
            if not wait:
                return JobAccepted(job_id=job_id, status="queued", status_url=f"/v1/jobs/{job_id}")
            return await self.wait(job_id, timeout=self.timeout)
        body = response.json()
        if response.status_code == 202:
            accepted = JobAccepted.model_validate(body)
            if not wait:
                return accepted
            # The server stopped waiting (its wait timeout): poll until the job is answered.
            return await self.wait(accepted.job_id, timeout=self.timeout)
        return ClipAnswer.model_validate(body)

    async def submit(self, video: Video, **options: Any) -> JobAccepted:
        """Queues a clip without waiting (``classify(..., wait=False)``); see :meth:`wait`."""
        accepted: JobAccepted = await self.classify(video, wait=False, **options)
        return accepted

    async def job(self, job_id: str) -> JobView:
        """A job's state, with its ``result`` (or ``error``) once answered. With auth on, a job
        another key submitted is not found (404), as an unknown one; an admin key reads every
        job."""
        response = await self.request("GET", f"/v1/jobs/{job_id}")
        return JobView.model_validate(response.json())

    async def wait(
        self, job_id: str, *, timeout: float | None = None, poll_s: float = JOB_POLL_S
    ) -> ClipAnswer:
        """Polls a job until it is answered.

        Raises:
            ApiError: The job failed (status, code and message of its error), or is unknown.
            JobTimeoutError: Not answered within ``timeout`` seconds (default: the client's).
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            view = await self.job(job_id)
            if view.status == "done" and view.result is not None:
                return view.result
            if view.status == "failed":
                error = view.error
                raise api_error(
                    error.http_status if error else 500,
                    error.code if error else "failed",
                    error.message if error else "the job failed",
                    body=error.model_dump() if error else None,
                )
            if time.monotonic() >= deadline:
                raise JobTimeoutError(
                    job_id, f"job {job_id} is still {view.status} after {limit} s"
                )
            await asyncio.sleep(poll_s)

    # Models and health.

    async def models(self) -> ModelList:
        """The models the live workers serve, with the defaults."""
        return ModelList.model_validate((await self.request("GET", "/v1/models")).json())

    async def health(self) -> Health:
        """``/healthz``: the gateway process answers."""
        return Health.model_validate((await self.request("GET", "/healthz")).json())

    async def ready(self) -> Readiness:
        """``/readyz``: whether the service can do work (a 503 is answered, not raised)."""
        try:
            response = await self._http.get("/readyz")
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code not in (200, 503):
            raise error_from_response(response)
        return Readiness.model_validate(response.json())

    # Live streams and RTSP sessions.

    def live(
        self,
        *,
        model: str | None = None,
        budget: BudgetLike | None = None,
        stride: int | None = None,
    ) -> AsyncLiveStream:
        """A live session (``async with client.live() as stream``): send frames, read events.

        Args:
            model: A live model; default: the server's.
            budget: Tokens recomputed per frame: a fraction, ``"all"`` or a budget object;
                default: the server's.
            stride: Labels every this many frames; default: the server's.

        Raises (on entering):
            ApiError: The server refused the stream (unknown model, no worker, bad budget...).
            TransportError: The server could not be reached.
        """
        query: dict[str, str] = {}
        if model:
            query["model"] = model
        if budget is not None:
            query["budget"] = _budget_text(budget)
        if stride is not None:
            query["stride"] = str(stride)
        url = ws_url(self.url, "/v1/streams/live", query)
        return AsyncLiveStream(url, self._headers, self.timeout)

    async def open_rtsp(
        self,
        source: str,
        *,
        model: str | None = None,
        budget: BudgetLike | None = None,
        stride: int | None = None,
    ) -> SessionView:
        """Asks a worker to read an RTSP camera (``POST /v1/streams``); follow it with
        :meth:`events`, stop it with :meth:`close`."""
        body: dict[str, Any] = {"source": source}
        if model:
            body["model"] = model
        if budget is not None:
            body["budget"] = check_budget(budget)
        if stride is not None:
            body["stride"] = stride
        response = await self.request("POST", "/v1/streams", idempotent=False, json=body)
        return SessionView.model_validate(response.json())

    async def sessions(self) -> list[SessionView]:
        """The open sessions this key opened (every one for an admin key, or with auth off),
        live and RTSP, oldest first."""
        response = await self.request("GET", "/v1/streams")
        return SessionList.model_validate(response.json()).sessions

    async def session(self, session_id: str) -> SessionView:
        """A session's state, source health, latest labels and counters."""
        response = await self.request("GET", f"/v1/streams/{session_id}")
        return SessionView.model_validate(response.json())

    async def close(self, session_id: str) -> SessionView:
        """Stops a session (``closed_now`` says whether this call did)."""
        response = await self.request("DELETE", f"/v1/streams/{session_id}")
        return SessionView.model_validate(response.json())

    async def events(
        self, session_id: str, *, after: str | None = None, reconnect: bool = True
    ) -> AsyncIterator[Event]:
        """A session's events (``WS /v1/streams/{id}/events``) until it ends.

        Without ``after`` the first is a ``session`` event, then every event still kept; with
        an event id, the events after it. A connection that drops or closes before the session's
        ``end`` is reopened after the last event received (up to the retry policy's attempts in
        a row), so none is lost or repeated; ``reconnect=False`` ends the iteration instead.

        Raises:
            NotFoundError: Unknown or expired session.
            TransportError: The connection could not be (re)opened.
        """
        attempt = 0
        while True:
            query = {"after": after} if after else {}
            url = ws_url(self.url, f"/v1/streams/{session_id}/events", query)
            try:
                async with connect(
                    url, additional_headers=self._headers, max_size=None, open_timeout=self.timeout
                ) as ws:
                    async for message in ws:
                        event = parse_event(json.loads(message))
                        attempt = 0
                        if isinstance(event, ErrorEvent) and event.code == "session_not_found":
                            raise error_from_event(event.model_dump(by_alias=True))
                        after = event.event_id or after
                        yield event
                        if event.type in FINAL_EVENTS:
                            return
                # Closed without an end event: the gateway went away (a restart, a deploy).
                if not reconnect:
                    return
                if attempt >= self.retry.max_retries:
                    raise TransportError(f"the events of {session_id} stopped before its end")
            except InvalidHandshake as exc:
                raise handshake_error(exc, url) from exc
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                if not reconnect or attempt >= self.retry.max_retries:
                    raise TransportError(f"lost the events of {session_id}: {exc}") from exc
            await asyncio.sleep(self.retry.delay(attempt, None))
            attempt += 1
