"""The SDK against a running ``vidrec serve`` (and a gateway with no worker, for retries).

Every answer is also checked to be fully described by service/wire.py: a field the server sends
that the wire models do not name fails here, so the contract is updated with the server.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from inference_bundles import CLIP_MODEL, LIVE_MODEL
from PIL import Image
from pydantic import BaseModel
from rtsp_fixture import PACKAGES, RtspTestServer, free_port, missing_requirements
from sdk_support import embedded_redis, gateway
from serve_support import ServeProcess

from model_core.data import CLASS_NAMES, ClipSpec, generate_stream
from model_core.data.video_io import write_video
from service.cli import main
from vidrec import (
    AsyncClient,
    BudgetEvent,
    Client,
    ClipAnswer,
    ClosedEvent,
    ErrorEvent,
    JobAccepted,
    LabelsEvent,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
    SessionEvent,
    TransportError,
    UnsupportedMediaError,
    video_frames,
)

pytestmark = pytest.mark.integration


def undescribed(model: BaseModel, where: str = "") -> list[str]:
    """Fields of ``model`` and the models inside it that the wire models do not name."""
    found = [f"{where}{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, BaseModel):
                found += undescribed(item, f"{where}{name}.")
    return found


def assert_described(model: BaseModel) -> None:
    missing = undescribed(model)
    assert not missing, f"add these fields to service/wire.py {type(model).__name__}: {missing}"


def http_count(url: str, route: str, status: int, *, escape: bool = True) -> float:
    """``vidrec_http_requests_total`` of a route (a regex with ``escape=False``) and status,
    summed over methods, from the gateway's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    where = re.escape(route) if escape else route
    labels = rf'[^}}]*route="{where}"[^}}]*status="{status}"[^}}]*'
    pattern = rf"vidrec_http_requests_total{{{labels}}} (\S+)"
    return sum(float(value) for value in re.findall(pattern, text))


def test_importing_the_sdk_loads_no_model_code() -> None:
    code = (
        "import sys, vidrec, vidrec.client, vidrec.aio, vidrec.live, vidrec.frames; "
        "print(sorted({'torch', 'model_core', 'numpy', 'av', 'PIL'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_clips_jobs_and_models(sdk_server: ServeProcess, samples: Path) -> None:
    clip = samples / "clip.mp4"
    with Client(sdk_server.url) as client:
        assert client.health().status == "ok"
        ready = client.ready()
        assert ready.ready and ready.workers == 1
        listing = client.models()
        assert_described(listing)
        assert listing.defaults.clip == CLIP_MODEL and listing.defaults.live == LIVE_MODEL
        assert {m.name for m in listing.models} == {CLIP_MODEL, LIVE_MODEL}
        assert next(m for m in listing.models if m.name == LIVE_MODEL).live

        answer = client.classify(clip, top_k=3)
        assert_described(answer)
        assert answer.model == CLIP_MODEL and len(answer.labels) == 3
        assert all(label.label in CLASS_NAMES for label in answer.labels)
        scores = [label.score for label in answer.labels]
        assert scores == sorted(scores, reverse=True)
        assert answer.compute.frames == 8 and answer.compute.gmacs > 0
        assert answer.sampled is not None and answer.sampled.clip.num_frames == 8
        assert 0 < answer.timing_ms.inference <= answer.timing_ms.total

        # bytes and a file object are uploads too; the same clip gets the same labels
        from_bytes = client.classify(clip.read_bytes(), top_k=3, crops=3)
        assert from_bytes.sampled is not None and from_bytes.sampled.views == 3
        with clip.open("rb") as handle:
            from_file = client.classify(handle, top_k=3)
        assert [lb.label for lb in from_file.labels] == [lb.label for lb in answer.labels]

        accepted = client.submit(clip, top_k=2)
        assert isinstance(accepted, JobAccepted) and accepted.status == "queued"
        waited = client.wait(accepted.job_id, timeout=60)
        assert isinstance(waited, ClipAnswer) and waited.job_id == accepted.job_id
        view = client.job(accepted.job_id)
        assert_described(view)
        assert view.status == "done" and view.filename == "clip.mp4"
        assert view.result is not None and len(view.result.labels) == 2


def test_refusals_are_typed_and_uploads_are_not_repeated(
    sdk_server: ServeProcess, samples: Path
) -> None:
    url = sdk_server.url
    with Client(url) as client:
        with pytest.raises(NotFoundError) as unknown:
            client.classify(samples / "clip.mp4", model="nope")
        assert unknown.value.status == 404 and unknown.value.code == "unknown_model"
        assert unknown.value.body["models"] == sorted([CLIP_MODEL, LIVE_MODEL])
        assert "unknown model 'nope'" in unknown.value.message

        before = http_count(url, "/v1/clips", 415)
        with pytest.raises(UnsupportedMediaError) as bad:
            client.classify(b"not a video at all" * 20)
        assert bad.value.status == 415 and bad.value.code == "not_a_video"
        assert http_count(url, "/v1/clips", 415) == before + 1  # sent once, not retried

        with pytest.raises(NotFoundError, match="job_not_found"):
            client.job("nojob")
        with pytest.raises(NotFoundError, match="session_not_found"):
            client.session("nosession")
        with pytest.raises(NotFoundError) as not_live, client.live(model=CLIP_MODEL):
            pass
        assert not_live.value.code == "unknown_model"
        with pytest.raises(ValueError, match="budget"):
            client.live(budget="lots")


def test_unreachable_server_is_retried_then_reported() -> None:
    start = time.monotonic()
    retry = RetryPolicy(max_retries=2, backoff_s=0.2)
    with (
        Client("http://127.0.0.1:1", retry=retry) as client,
        pytest.raises(TransportError, match=r"cannot reach http://127\.0\.0\.1:1"),
    ):
        client.health()
    assert time.monotonic() - start >= 0.4  # two waits: at least 0.15 s and 0.3 s with jitter


def test_503_is_retried_after_retry_after(lonely_gateway: str, samples: Path) -> None:
    retry = RetryPolicy(max_retries=2)
    before = http_count(lonely_gateway, "/v1/clips", 503)
    start = time.monotonic()
    with Client(lonely_gateway, retry=retry) as client:
        assert client.models().models == []
        with pytest.raises(ServiceUnavailableError) as refused:
            client.classify(samples / "clip.mp4")
        elapsed = time.monotonic() - start
        with pytest.raises(ServiceUnavailableError, match="no_worker"), client.live():
            pass
    assert refused.value.code == "no_worker" and refused.value.retry_after_s == 1.0
    assert http_count(lonely_gateway, "/v1/clips", 503) == before + 3  # 1 try + 2 retries
    assert elapsed >= 1.9  # Retry-After: 1, twice


def test_url_from_the_environment(
    sdk_server: ServeProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIDREC_URL", sdk_server.url)
    with Client() as client:
        assert client.url == sdk_server.url and client.health().status == "ok"
    assert main(["client", "models"]) == 0
    assert f"{LIVE_MODEL} " in capsys.readouterr().out


def test_live_stream_from_arrays(sdk_server: ServeProcess, tmp_path: Path) -> None:
    frames = np.zeros((16, 96, 96, 3), np.uint8)
    for t, frame in enumerate(frames):
        frame[30:60, 4 * t : 4 * t + 30] = 255
    # One frame goes as an image file's path, the others as arrays.
    png = tmp_path / "frame3.png"
    Image.fromarray(frames[3]).save(png)
    sent: list[np.ndarray | Path] = [*frames[:3], png, *frames[4:]]
    with Client(sdk_server.url) as client, client.live(stride=8, budget="all") as stream:
        assert_described(stream.session)
        assert stream.session.model == LIVE_MODEL and stream.session.stride == 8
        assert stream.session.budget == {"keep_all": True}
        # Paced, so the worker drops none (a stream faster than its worker loses frames).
        for frame in sent[:8]:
            stream.send(frame)
            time.sleep(0.05)
        stream.set_budget(0.5)
        stream.send(b"\x89PNG but not really")
        for frame in sent[8:]:
            stream.send(frame)
            time.sleep(0.05)
        stream.finish()
        events = list(stream)
    labels = [e for e in events if isinstance(e, LabelsEvent)]
    assert [e.frame_index for e in labels] == [8, 16]
    for event in labels:
        assert_described(event)
    assert labels[0].compute.gmacs == pytest.approx(labels[0].compute.dense_gmacs)
    assert labels[1].compute.recompute_fraction < 1.0  # the new budget took effect
    budget = next(e for e in events if isinstance(e, BudgetEvent))
    assert budget.budget == {"fraction": 0.5}
    error = next(e for e in events if isinstance(e, ErrorEvent))
    assert error.input_index == 8 and error.code in ("malformed_frame", "unsupported_image")
    assert isinstance(events[-1], ClosedEvent)
    assert stream.stats.sent == 17 and stream.stats.labels == 2 and stream.stats.errors == 1


def test_async_client_and_a_video_file(sdk_server: ServeProcess, samples: Path) -> None:
    async def run() -> tuple[list[ClipAnswer], list[LabelsEvent], SessionEvent]:
        async with AsyncClient(sdk_server.url) as client:
            answers = await asyncio.gather(
                *(client.classify(samples / "clip.mp4", top_k=1) for _ in range(3))
            )
            frames = video_frames(samples / "stream.mp4", max_frames=12)
            async with client.live(stride=4) as stream:
                stream.send_frames(frames, fps=20)
                events = [e async for e in stream if isinstance(e, LabelsEvent)]
                assert stream.session is not None
                return list(answers), events, stream.session

    answers, labels, session = asyncio.run(run())
    assert len({a.job_id for a in answers}) == 3
    assert len({a.labels[0].label for a in answers}) == 1
    assert session.window == 8 and [e.frame_index for e in labels] == [4, 8, 12]


def test_rtsp_session_events_resume_after_an_event(
    sdk_server: ServeProcess, tmp_path: Path
) -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    stream = generate_stream(5, num_actions=3, spec=ClipSpec(size=96, fps=20.0))
    camera = RtspTestServer(
        {"cam": write_video(tmp_path / "cam.mp4", stream.frames[:200], fps=20.0)}, tmp_path
    )
    camera.start()
    try:
        with Client(sdk_server.url) as client:
            session = client.open_rtsp(camera.url("cam"), stride=4, budget=0.5)
            assert_described(session)
            assert session.kind == "rtsp" and session.model == LIVE_MODEL
            first: list[LabelsEvent] = []
            for event in client.events(session.session_id):
                if isinstance(event, SessionEvent):
                    assert_described(event)
                    assert event.state is not None and event.kind == "rtsp"
                if isinstance(event, LabelsEvent):
                    first.append(event)
                    if len(first) == 2:
                        break
            assert first[0].event_id is not None and first[1].event_id is not None
            # Resuming after the first labels event gives the second one next, not again the first.
            resumed = client.events(session.session_id, after=first[0].event_id)
            after = next(e for e in resumed if isinstance(e, LabelsEvent))
            resumed.close()
            assert after.event_id == first[1].event_id
            view = client.session(session.session_id)
            assert_described(view)
            assert view.counters.frames_processed >= 8
            closed = client.close(session.session_id)
            assert closed.closed_now is True and closed.state == "closed"
    finally:
        camera.stop()


def test_events_resume_across_a_gateway_restart(sdk_server: ServeProcess, tmp_path: Path) -> None:
    """The events of a session, read through a gateway that is stopped and started again on the
    same port, arrive once each and in order: the client reopens after the last event it got."""
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    frames = generate_stream(7, num_actions=12, spec=ClipSpec(size=96, fps=20.0)).frames
    camera = RtspTestServer({"cam": write_video(tmp_path / "cam.mp4", frames, fps=20.0)}, tmp_path)
    camera.start()
    redis_url, port = embedded_redis(sdk_server), free_port()
    stop_second = threading.Event()

    def second_gateway() -> None:
        with gateway(redis_url, port=port):
            stop_second.wait()

    restarted = threading.Thread(target=second_gateway, daemon=True)
    labels: list[LabelsEvent] = []
    retry = RetryPolicy(max_retries=8, backoff_s=0.25)
    try:
        with Client(sdk_server.url) as opener:
            session = opener.open_rtsp(camera.url("cam"), stride=4)
            first = gateway(redis_url, port=port)
            with Client(first.__enter__(), retry=retry) as reader:
                try:
                    for event in reader.events(session.session_id):
                        if isinstance(event, LabelsEvent):
                            labels.append(event)
                            if len(labels) == 2:  # the gateway goes away under the reader
                                first.__exit__(None, None, None)
                                restarted.start()
                            if len(labels) == 12:  # more than the client had buffered
                                break
                finally:
                    if not restarted.is_alive():
                        first.__exit__(None, None, None)
            opener.close(session.session_id)
        # The reader's events after the restart came through the second gateway's socket.
        route = "/v1/streams/{session_id}/events"
        assert http_count(f"http://127.0.0.1:{port}", route, 101) >= 1
    finally:
        stop_second.set()
        if restarted.is_alive():
            restarted.join(timeout=30)
        camera.stop()
    indices = [e.frame_index for e in labels]
    assert indices == list(range(indices[0], indices[0] + 4 * len(indices), 4)), indices


def test_429_is_retried_after_retry_after(sdk_server: ServeProcess) -> None:
    redis_url = embedded_redis(sdk_server)
    with gateway(redis_url, rate_limit_rps="1", rate_limit_burst="1") as url:
        with Client(url, retry=RetryPolicy(max_retries=0)) as impatient:
            impatient.models()
            with pytest.raises(RateLimitError) as limited:
                impatient.models()
        assert limited.value.status == 429 and limited.value.retry_after_s is not None
        assert limited.value.retry_after_s > 0
        with Client(url) as patient:  # the default policy: waits Retry-After and tries again
            for _ in range(3):
                assert patient.models().defaults.clip == CLIP_MODEL
        # Any route label: a request the rate limit refuses is answered before routing.
        assert http_count(url, '[^"]*', 429, escape=False) >= 2  # the impatient one's, a retry's
        assert http_count(url, "/v1/models", 200) == 4
