"""``vidrec stream`` on a real MP4 read frame by frame, and on a real RTSP server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

# Helpers beside the inference tests (tiny bundles) and the ingest tests (the RTSP server);
# --import-mode=importlib keeps test directories off sys.path.
_TESTS = Path(__file__).resolve().parent.parent
for _helpers in (_TESTS / "inference", _TESTS / "ingest"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import AVG_MODEL, CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402
from rtsp_fixture import PACKAGES, RtspTestServer, missing_requirements  # noqa: E402

from model_core.data import ClipSpec, generate_stream  # noqa: E402
from model_core.data.video_io import write_video  # noqa: E402
from model_core.eventful import KEEP_ALL, Threshold, TopFraction, TopR  # noqa: E402
from model_core.preprocess import preprocess_frames  # noqa: E402
from service.cli import main  # noqa: E402
from service.cli.stream_cmd import VideoFile, parse_budget_arg  # noqa: E402
from service.inference import ModelCatalog  # noqa: E402

VIDREC = shutil.which("vidrec") or str(Path(sys.executable).parent / "vidrec")
FRAMES = 20


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream")
    write_bundles(root / "models")
    stream = generate_stream(3, num_actions=2, spec=ClipSpec(size=96, fps=10.0))
    video = write_video(root / "stream.mp4", stream.frames[:FRAMES], fps=10.0)
    bad = root / "bad.mp4"
    bad.write_bytes(b"not a video")
    return {"models": root / "models", "video": video, "bad": bad}


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_events_of_a_file_equal_the_dense_model(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stream", str(files["video"]), "--models-dir", str(files["models"]), "--json"]
    assert main([*argv, "--budget", "keep_all", "--stride", "4", "--top-k", "11"]) == 0
    lines = json_lines(capsys.readouterr().out)
    header, events, end = lines[0], lines[1:-1], lines[-1]
    assert header == {
        "type": "session",
        "source": str(files["video"]),
        "model": LIVE_MODEL,  # the zoo's live default
        "stride": 4,
        "window": 8,
        "budget": {"keep_all": True},
    }
    assert [e["frame_index"] for e in events] == [4, 8, 12, 16, 20]
    assert end["type"] == "end" and end["frames"] == FRAMES and "error" not in end
    assert end["totals"]["gmacs"] == pytest.approx(end["totals"]["dense_gmacs"])

    # The dense model over each window of the same decoded frames.
    entry = ModelCatalog.load(files["models"], [LIVE_MODEL], device="cpu").get(LIVE_MODEL)
    video = VideoFile.open(files["video"])
    try:
        frames = np.stack([f for _, f in video.frames(entry.config.preprocessing.resize_size)])
    finally:
        video.close()
    x = preprocess_frames(frames, entry.config.preprocessing)
    for event in events:
        count = event["frame_index"]
        with torch.no_grad():
            probs = entry.model(x[None, max(0, count - 8) : count])[0].softmax(-1)
        got = {row["label"]: row["score"] for row in event["labels"]}
        expected = {label: float(p) for label, p in zip(entry.labels, probs, strict=True)}
        assert got == pytest.approx(expected, abs=1e-5)
        assert event["type"] == "labels" and event["model"] == LIVE_MODEL
        assert event["compute"]["frames"] == 4 and event["compute"]["recompute_fraction"] == 1.0
        assert event["latency_ms"] >= 0 and "session_id" not in event


def test_dtype_option(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--dtype bfloat16``: the same events and costs, scores off float32's by bfloat16's
    rounding only (and not equal to them: the option reaches the model)."""
    argv = ["stream", str(files["video"]), "--models-dir", str(files["models"]), "--json"]
    runs = {}
    for dtype in ("float32", "bfloat16"):
        assert main([*argv, "--budget", "keep_all", "--top-k", "11", "--dtype", dtype]) == 0
        runs[dtype] = json_lines(capsys.readouterr().out)
    full, half = runs["float32"][1:-1], runs["bfloat16"][1:-1]
    assert [e["frame_index"] for e in half] == [e["frame_index"] for e in full]
    assert runs["bfloat16"][-1]["totals"]["gmacs"] == pytest.approx(
        runs["float32"][-1]["totals"]["gmacs"]
    )
    for want, have in zip(full, half, strict=True):
        scores = {row["label"]: row["score"] for row in want["labels"]}
        got = {row["label"]: row["score"] for row in have["labels"]}
        assert got == pytest.approx(scores, abs=0.02)
    assert half[0]["labels"] != full[0]["labels"]


def test_text_output_and_a_lower_budget(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["stream", str(files["video"]), "--models-dir", str(files["models"])]
    assert main([*base, "--budget", "0.1", "--stride", "3", "--max-frames", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{files['video']}: model {LIVE_MODEL}, labels every 3 frames")
    assert [line.split()[:2] for line in lines[1:-1]] == [["frame", "3"], ["frame", "6"]]
    assert lines[-1].startswith("7 frames; ")
    assert "saved" in lines[-1]

    spent = {}
    for budget in ("keep_all", "0.25", '{"tokens": 3}'):
        assert main([*base, "--json", "--budget", budget, "--model", AVG_MODEL]) == 0
        end = json_lines(capsys.readouterr().out)[-1]
        spent[budget] = end["totals"]["gmacs"]
        assert end["totals"]["dense_gmacs"] > 0
    assert spent["keep_all"] > spent["0.25"] > spent['{"tokens": 3}']


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("0.25", TopFraction(0.25)),
        ("1", KEEP_ALL),
        ("keep_all", KEEP_ALL),
        ('{"tokens": 20}', TopR(20)),
        ('{"threshold": 0.1}', Threshold(0.1)),
    ],
)
def test_budget_argument(text: str, budget: object) -> None:
    assert parse_budget_arg(text) == budget


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "lots"], "--budget: budget 'lots' is not a number, 'all' or a JSON"),
        (["--budget", "1.5"], "--budget: budget fraction must be a number in (0, 1]"),
        (["--budget", "{nope"], "budget '{nope' is not a number, 'all' or a JSON object"),
        (["--stride", "0"], "--stride must be at least 1"),
        (["--max-frames", "0"], "--max-frames must be at least 1"),
        (
            ["--model", CLIP_MODEL],
            "cannot stream (live models are causal factorized, causal tokshift or vit_avg)",
        ),
        (["--model", "nope"], "unknown model 'nope'"),
    ],
)
def test_bad_options(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["stream", str(files["video"]), "--models-dir", str(files["models"]), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://example.com/cam.mp4", "sources are rtsp:// or rtsps:// URLs or local files"),
        ("rtsp://127.0.0.1:8554/cam", "loopback address (--allow-private allows"),
        ("rtsp://user:secret@10.1.2.3/cam", "private address"),
        ("no/such/file.mp4", "no file at no/such/file.mp4"),
    ],
)
def test_refused_sources(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    assert main(["stream", source, "--models-dir", str(files["models"])]) == 2
    err = capsys.readouterr().err
    assert message in err and "secret" not in err


def test_a_file_that_is_not_a_video(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stream", str(files["bad"]), "--models-dir", str(files["models"])]) == 2
    assert f"cannot read {files['bad']} as a video" in capsys.readouterr().err


def test_the_console_script(files: dict[str, Path]) -> None:
    result = subprocess.run(
        [VIDREC, "stream", str(files["video"]), "--models-dir", str(files["models"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert [e["type"] for e in json_lines(result.stdout)] == ["session"] + ["labels"] * 5 + ["end"]


@pytest.mark.integration
def test_labels_from_an_rtsp_camera(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    clip = generate_stream(4, num_actions=3, spec=ClipSpec(size=96, fps=20.0))
    served = write_video(tmp_path / "cam.mp4", clip.frames[:200], fps=20.0)
    server = RtspTestServer({"cam": served}, log_dir=tmp_path)
    server.start()
    try:
        argv = ["stream", server.url("cam"), "--models-dir", str(files["models"]), "--json"]
        status = main([*argv, "--allow-private", "--stride", "4", "--max-frames", "12"])
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert status == 0, out
    lines = json_lines(out)
    assert lines[0]["source"] == server.url("cam")
    assert [e["frame_index"] for e in lines[1:-1]] == [4, 8, 12]
    assert lines[-1]["frames"] == 12


def test_models_dir_defaults_to_vidrec_models_dir(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ``vidrec serve``, ``vidrec stream`` takes the bundles from VIDREC_MODELS_DIR."""
    monkeypatch.setenv("VIDREC_MODELS_DIR", str(files["models"]))
    assert main(["stream", str(files["video"]), "--max-frames", "4", "--json"]) == 0
    assert json_lines(capsys.readouterr().out)[0]["model"] == LIVE_MODEL
