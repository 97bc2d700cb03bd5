"""``vidrec client`` against a running ``vidrec serve`` (the shared server of conftest.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
for _helpers in (_HERE, _HERE.parent / "inference", _HERE.parent / "ingest"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL  # noqa: E402
from rtsp_fixture import PACKAGES, RtspTestServer, missing_requirements  # noqa: E402
from serve_support import ServeProcess  # noqa: E402

from model_core.data import CLASS_NAMES, ClipSpec, generate_clip, generate_stream  # noqa: E402
from model_core.data.video_io import write_video  # noqa: E402
from service.cli import main  # noqa: E402
from service.cli.client_cmd import (  # noqa: E402
    describe_error,
    format_answer,
    print_event,
    ws_url,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("client")
    clip = generate_clip(7, spec=ClipSpec(frames=16, size=96))
    stream = generate_stream(3, num_actions=2, spec=ClipSpec(size=96, fps=10.0))
    bad = root / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 20)
    return {
        "clip": write_video(root / "clip.mp4", clip.frames, fps=10.0),
        "stream": write_video(root / "stream.mp4", stream.frames[:12], fps=10.0),
        "bad": bad,
    }


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_clip_prints_labels_timing_and_compute(
    vidrec_server: ServeProcess, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["client", "clip", str(videos["clip"]), "--url", vidrec_server.url, "--top-k", "3"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{videos['clip']}: model {CLIP_MODEL} (job ")
    assert all(line.split()[0] in CLASS_NAMES for line in lines[1:4])
    assert lines[4].startswith("timing: queue_wait ") and "round trip" in lines[4]
    assert lines[5].startswith("compute: ") and "GMACs" in lines[5] and "frames 8" in lines[5]


def test_clip_json_and_no_wait_then_job(
    vidrec_server: ServeProcess, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = vidrec_server.url
    assert main(["client", "clip", str(videos["clip"]), "--url", url, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["model"] == CLIP_MODEL and len(body["labels"]) == 5
    assert body["compute"]["frames"] == 8

    argv = ["client", "clip", str(videos["clip"]), "--url", url, "--no-wait", "--json"]
    assert main(argv) == 0
    accepted = json.loads(capsys.readouterr().out)
    assert accepted["status"] == "queued"
    assert main(["client", "job", accepted["job_id"], "--url", url, "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["job_id"] == accepted["job_id"] and job["status"] in ("queued", "running", "done")


def test_clip_refusals_print_the_servers_message(
    vidrec_server: ServeProcess, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = vidrec_server.url
    assert main(["client", "clip", str(videos["bad"]), "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vidrec client: {videos['bad']}: HTTP 415 ")
    assert main(["client", "clip", str(videos["clip"]), "--url", url, "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404 unknown_model: unknown model 'nope' for clip; known models:" in err
    assert main(["client", "job", "nojob", "--url", url]) == 1
    assert "HTTP 404 job_not_found" in capsys.readouterr().err


def test_unreachable_server(videos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["client", "clip", str(videos["clip"]), "--url", "http://127.0.0.1:1", "--timeout", "5"]
    assert main(argv) == 1
    assert "cannot reach http://127.0.0.1:1" in capsys.readouterr().err
    assert main(["client", "models", "--url", "http://127.0.0.1:1"]) == 1


def test_models_table_and_json(
    vidrec_server: ServeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "models", "--url", vidrec_server.url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "model", "family", "frames", "px", "GMACs/clip", "labels", "serves", "default"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[2:-1]}
    assert rows[CLIP_MODEL][-1] == "clip" and rows[LIVE_MODEL][-1] == "live"
    assert rows[LIVE_MODEL][1:6] == ["factorized", "8", "112", rows[LIVE_MODEL][4], "11"]
    assert table[-1].startswith("1 live worker(s): ")
    assert main(["client", "models", "--url", vidrec_server.url, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["defaults"] == {"clip": CLIP_MODEL, "live": LIVE_MODEL}


def test_stream_a_file_over_the_websocket(
    vidrec_server: ServeProcess, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["client", "stream", str(videos["stream"]), "--url", vidrec_server.url, "--json"]
    assert main([*argv, "--fps", "20", "--budget", "all", "--stride", "4"]) == 0
    events = json_lines(capsys.readouterr().out)
    assert events[0]["type"] == "session" and events[0]["budget"] == {"keep_all": True}
    labels = [e for e in events if e["type"] == "labels"]
    assert [e["frame_index"] for e in labels] == [4, 8, 12]
    # keep_all recomputes every token: what it spends is the dense cost.
    for event in labels:
        assert event["compute"]["gmacs"] == pytest.approx(event["compute"]["dense_gmacs"])
    assert events[-1] == {
        "type": "summary",
        "frames_sent": 12,
        "labels_events": 3,
        "errors": 0,
        "gmacs": pytest.approx(sum(e["compute"]["gmacs"] for e in labels)),
        "dense_gmacs": pytest.approx(sum(e["compute"]["dense_gmacs"] for e in labels)),
    }


def test_stream_text_output_and_refused_stream(
    vidrec_server: ServeProcess, videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["client", "stream", str(videos["stream"]), "--url", vidrec_server.url, "--fps", "0"]
    assert main([*argv, "--max-frames", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("session ") and f"model {LIVE_MODEL}" in out[0]
    assert out[-1].startswith("8 frames sent, ")
    assert main([*argv, "--model", CLIP_MODEL]) == 1  # tokshift cannot stream
    assert "unknown_model" in capsys.readouterr().err


def test_rtsp_camera_followed_and_stopped(
    vidrec_server: ServeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    stream = generate_stream(4, num_actions=3, spec=ClipSpec(size=96, fps=20.0))
    camera = RtspTestServer(
        {"cam": write_video(tmp_path / "cam.mp4", stream.frames[:200], fps=20.0)}, tmp_path
    )
    camera.start()
    try:
        argv = ["client", "rtsp", camera.url("cam"), "--url", vidrec_server.url, "--json"]
        assert main([*argv, "--max-events", "2", "--stride", "4"]) == 0
    finally:
        camera.stop()
    events = json_lines(capsys.readouterr().out)
    assert events[0]["type"] == "session" and events[0]["kind"] == "rtsp"
    labels = [e for e in events if e["type"] == "labels"]
    assert len(labels) == 2 and labels[0]["compute"]["gmacs"] > 0


def test_helpers(capsys: pytest.CaptureFixture[str]) -> None:
    assert ws_url("http://h:8000/", "/v1/streams/live", {"budget": "0.25"}) == (
        "ws://h:8000/v1/streams/live?budget=0.25"
    )
    assert ws_url("https://h/base", "/x") == "wss://h/base/x"
    with pytest.raises(ValueError, match="http:// or https://"):
        ws_url("ftp://h", "/x")
    answer = {
        "model": "m",
        "labels": [{"label": "waving", "score": 0.75}],
        "timing_ms": {"decode": 2.0, "total": 5.5},
        "compute": {"gmacs": 0.25, "frames": 8},
    }
    assert format_answer("f.mp4", answer, 9.0).splitlines() == [
        "f.mp4: model m",
        "  waving  0.750",
        "timing: decode 2.0 ms, total 5.5 ms, round trip 9.0 ms",
        "compute: 0.250 GMACs, frames 8",
    ]
    import httpx

    response = httpx.Response(
        429,
        json={"error": {"code": "queue_full", "message": "the queue is full"}},
        headers={"Retry-After": "2"},
    )
    assert describe_error(response) == ("HTTP 429 queue_full: the queue is full (retry after 2 s)")

    # an RTSP session's first event (a GET /v1/streams/{id} body) has no window: none is printed
    session = {"type": "session", "session_id": "s", "model": "m", "stride": 4, "owner": "w"}
    print_event({**session, "budget": {"fraction": 0.25}}, as_json=False)
    print_event({**session, "budget": {"tokens": 3}, "window": 8}, as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        'session s: model m, labels every 4 frames, budget {"fraction": 0.25}, worker w',
        'session s: model m, labels every 4 frames over 8, budget {"tokens": 3}, worker w',
    ]
