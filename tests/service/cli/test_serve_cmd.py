"""``vidrec serve`` as a real subprocess on a free port, driven over HTTP and WebSocket as a client
would; ``vidrec gateway`` and ``vidrec worker`` refusing to start without Redis."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

_HERE = Path(__file__).resolve().parent
for _helpers in (_HERE, _HERE.parent / "inference"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL  # noqa: E402
from serve_support import SERVE_CODE, ServeProcess, alive, serve_env  # noqa: E402

from model_core.data import CLASS_NAMES, ClipSpec, generate_clip, generate_stream  # noqa: E402
from model_core.data.video_io import write_video  # noqa: E402
from service.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real H.264 MP4 of a generated action clip."""
    clip = generate_clip(5, spec=ClipSpec(frames=16, size=96))
    path = write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", clip.frames, fps=10.0)
    return path.read_bytes()


def jpegs(count: int, size: int = 96) -> list[bytes]:
    """JPEG frames of a generated stream."""
    stream = generate_stream(2, num_actions=2, spec=ClipSpec(size=size, fps=10.0))
    out = []
    for image in stream.frames[:count]:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@pytest.mark.integration
def test_clip_upload_is_answered_with_labels_timing_and_compute(
    vidrec_server: ServeProcess, mp4: bytes
) -> None:
    with httpx.Client(base_url=vidrec_server.url, timeout=60) as http:
        answer = http.post(
            "/v1/clips", files={"file": ("clip.mp4", mp4, "video/mp4")}, data={"top_k": "3"}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == CLIP_MODEL  # the zoo's clip default
    assert len(body["labels"]) == 3
    assert all(item["label"] in CLASS_NAMES for item in body["labels"])
    scores = [item["score"] for item in body["labels"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    timing = body["timing_ms"]
    assert {"queue_wait", "decode", "inference", "total"} <= set(timing)
    assert all(timing[k] >= 0 for k in ("queue_wait", "decode", "inference", "total"))
    assert timing["total"] >= timing["inference"]
    assert body["compute"]["gmacs"] > 0 and body["compute"]["frames"] == 8


@pytest.mark.integration
def test_async_job_then_poll(vidrec_server: ServeProcess, mp4: bytes) -> None:
    with httpx.Client(base_url=vidrec_server.url, timeout=60) as http:
        accepted = http.post(
            "/v1/clips", files={"file": ("clip.mp4", mp4, "video/mp4")}, data={"wait": "false"}
        )
        assert accepted.status_code == 202, accepted.text
        status_url = accepted.json()["status_url"]
        deadline = time.monotonic() + 60
        while (job := http.get(status_url).json())["status"] != "done":
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.1)
    assert job["result"]["labels"] and job["result"]["compute"]["gmacs"] > 0


@pytest.mark.integration
def test_refusals_have_the_error_shape(vidrec_server: ServeProcess) -> None:
    with httpx.Client(base_url=vidrec_server.url, timeout=60) as http:
        not_video = http.post("/v1/clips", files={"file": ("a.mp4", b"nope" * 100, "video/mp4")})
        unknown = http.post(
            "/v1/clips", files={"file": ("a.mp4", b"x", "video/mp4")}, data={"model": "nope"}
        )
    assert not_video.status_code == 415, not_video.text
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_model"


async def live_stream(url: str, frames: list[bytes]) -> list[dict[str, Any]]:
    """Sends the frames over the live WebSocket; the events until the last labels event."""
    from websockets.asyncio.client import connect

    ws_url = url.replace("http://", "ws://") + f"/v1/streams/live?model={LIVE_MODEL}&budget=0.5"
    events: list[dict[str, Any]] = []
    async with connect(ws_url) as ws:
        events.append(json.loads(await ws.recv()))
        for jpeg in frames:
            await ws.send(jpeg)
            await asyncio.sleep(0.05)  # a camera's pace, so the worker drops nothing
        while not any(e.get("frame_index") == len(frames) for e in events):
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        await ws.send(json.dumps({"type": "close"}))
        while events[-1]["type"] != "closed":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    return events


@pytest.mark.integration
def test_live_websocket_stream_gets_labels_with_compute(vidrec_server: ServeProcess) -> None:
    events = asyncio.run(live_stream(vidrec_server.url, jpegs(8)))
    session = events[0]
    assert session["type"] == "session" and session["model"] == LIVE_MODEL
    assert session["budget"] == {"fraction": 0.5} and session["stride"] == 4
    labels = [e for e in events if e["type"] == "labels"]
    assert [e["frame_index"] for e in labels] == [4, 8]
    for event in labels:
        assert event["labels"][0]["label"] in CLASS_NAMES
        assert event["latency_ms"] >= 0
        compute = event["compute"]
        assert 0 < compute["gmacs"] <= compute["dense_gmacs"]
        assert 0 < compute["recompute_fraction"] <= 1
    # Frames after the first recompute about half the tokens, so less than dense.
    assert labels[1]["compute"]["gmacs"] < labels[1]["compute"]["dense_gmacs"]


@pytest.mark.integration
def test_metrics_show_the_traffic(vidrec_server: ServeProcess, mp4: bytes) -> None:
    with httpx.Client(base_url=vidrec_server.url, timeout=60) as http:
        before = http.get("/metrics").text
        assert http.post("/v1/clips", files={"file": ("c.mp4", mp4, "video/mp4")}).is_success
        asyncio.run(live_stream(vidrec_server.url, jpegs(4)))
        # Worker figures ride on its heartbeat: wait for the next one.
        deadline = time.monotonic() + 30
        while True:
            after = http.get("/metrics").text
            done = metric_value(after, "vidrec_clip_jobs_total", model=CLIP_MODEL, status="done")
            frames = metric_value(after, "vidrec_frames_processed_total", model=LIVE_MODEL)
            if (
                done
                > metric_value(before, "vidrec_clip_jobs_total", model=CLIP_MODEL, status="done")
                and frames
                >= metric_value(before, "vidrec_frames_processed_total", model=LIVE_MODEL) + 4
            ):
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
    requests = "vidrec_http_requests_total"
    posts = metric_value(after, requests, route="/v1/clips", method="POST", status="200")
    assert posts > metric_value(before, requests, route="/v1/clips", method="POST", status="200")
    assert metric_value(after, requests, route="/v1/streams/live", method="WS", status="101") >= 1
    assert metric_value(after, "vidrec_workers_live") == 1
    assert metric_value(after, "vidrec_gmacs_total", model=LIVE_MODEL) > 0
    assert metric_value(after, "vidrec_frames_received_total", kind="live") >= 4


@pytest.mark.integration
def test_sigterm_stops_everything_and_a_dead_worker_is_restarted(tiny_models: Path) -> None:
    server = ServeProcess(serve_env(tiny_models))
    try:
        server.wait_ready()
        redis_pid = int(server.wait_for(r"embedded Redis on unix://\S+ \(pid (\d+)\)").group(1))
        first = int(server.wait_for(r"worker 1 started \(pid (\d+)\)").group(1))
        server.wait_for(r"worker 1 ready")
        children = server.descendants()
        assert redis_pid in children and first in children
        # A worker that dies is restarted, and the service gets ready again.
        kill_at = len(server.lines)
        os.kill(first, signal.SIGKILL)
        server.wait_for(rf"worker 1 \(pid {first}\) exited with status -9", after=kill_at)
        second = int(server.wait_for(r"worker 1 started \(pid (\d+)\)", after=kill_at).group(1))
        server.wait_for(r"worker 1 ready", after=kill_at)
        server.wait_ready()
        everything = server.descendants()
    finally:
        status = server.stop(signal.SIGTERM)
    assert status == 0, server.output
    out = server.output
    # The order: gateway, workers (drained), Redis.
    assert out.index("vidrec serve: stopping") < out.index("waiting for 1 worker(s) to drain")
    assert out.index("to drain") < out.index("embedded Redis stopped")
    assert f"worker 1 (pid {second}) stopped with status 0" in out
    assert "Fatal Python error" not in out
    assert second != first and second in everything and redis_pid in everything
    time.sleep(0.2)
    assert [pid for pid in everything if alive(pid)] == []


@pytest.mark.integration
def test_serve_without_bundles_fails_at_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_CODE, "serve", "--port", "0"],
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no model bundles (*.safetensors) in {tmp_path}" in result.stderr
    assert "listening" not in result.stdout


def test_serve_with_a_redis_url_that_does_not_answer(
    tiny_models: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIDREC_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["serve", "--port", "0", "--models-dir", str(tiny_models)]) == 2
    assert "redis://127.0.0.1:1/0 (VIDREC_REDIS_URL) does not answer" in capsys.readouterr().err


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_roles_need_a_redis_url(
    role: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VIDREC_REDIS_URL", raising=False)
    assert main([role]) == 2
    err = capsys.readouterr().err
    assert f"vidrec {role}: error: the {role} needs a Redis server: set VIDREC_REDIS_URL" in err


def test_bad_settings_are_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIDREC_QUEUE_MAX_JOBS", "0")
    assert main(["serve", "--port", "0"]) == 2
    assert "VIDREC_QUEUE_MAX_JOBS" in capsys.readouterr().err
    monkeypatch.delenv("VIDREC_QUEUE_MAX_JOBS")
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


@pytest.mark.integration
def test_a_killed_serve_leaves_no_process(tiny_models: Path) -> None:
    """SIGKILL gives serve no chance to clean up: its children notice their stdin pipes close
    (the Redis keeper stops the server, the workers drain and exit)."""
    server = ServeProcess(serve_env(tiny_models))
    try:
        server.wait_ready()
        children = server.descendants()
        assert len(children) >= 3  # keeper, redis-server, worker
    finally:
        server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 45
    while left := [pid for pid in children if alive(pid)]:
        assert time.monotonic() < deadline, f"still running: {left}"
        time.sleep(0.2)
