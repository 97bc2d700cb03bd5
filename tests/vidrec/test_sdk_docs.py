"""Every Python example of docs/SDK.md runs, as written, against a running ``vidrec serve``.

Each ``python`` block runs in its own interpreter, in a directory holding the sample videos the
page says to write, with ``VIDREC_URL`` pointing at the server. The RTSP example's camera address
is replaced by a real RTSP server's. Blocks fenced ``python no-run`` (a camera device) are only
compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from inference_bundles import CLIP_MODEL, LIVE_MODEL
from rtsp_fixture import PACKAGES, RtspTestServer, missing_requirements
from serve_support import ServeProcess

from model_core.data import ClipSpec, generate_stream
from model_core.data.video_io import write_video

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "SDK.md"
EXAMPLE_CAMERA = "rtsp://camera.example.com:8554/cam"
_BLOCK = re.compile(r"^```(python(?: no-run)?)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(DOC.read_text())]


def run_block(code: str, cwd: Path, url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env["VIDREC_URL"] = url
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def test_the_page_has_the_examples_this_test_expects() -> None:
    kinds = [kind for kind, _code in blocks()]
    assert kinds.count("python") == 7 and kinds.count("python no-run") == 1
    for _kind, code in blocks():
        compile(code, str(DOC), "exec")


def test_the_examples_run(sdk_server: ServeProcess, samples: Path, tmp_path: Path) -> None:
    runnable = [code for kind, code in blocks() if kind == "python"]
    out = [run_block(code, samples, sdk_server.url) for code in runnable[:6]]
    classify, jobs, errors, live_file, live_arrays, aio = out
    assert f"clip default: {CLIP_MODEL} live default: {LIVE_MODEL}" in classify
    assert re.search(r"queue [\d.]+ ms, decode [\d.]+ ms, inference [\d.]+ ms, total", classify)
    assert jobs.count(" done copy") == 3
    assert errors.splitlines()[0].startswith("404 unknown_model ")
    assert errors.splitlines()[1].startswith("415 not_a_video ")
    assert live_file.startswith("session ") and "of the dense compute saved" in live_file
    assert "budget now {'tokens': 10}" in live_arrays and "refused frame 16 " in live_arrays
    assert aio.count("\n") >= 2

    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    stream = generate_stream(6, num_actions=3, spec=ClipSpec(size=96, fps=20.0))
    camera = RtspTestServer(
        {"cam": write_video(tmp_path / "cam.mp4", stream.frames[:200], fps=20.0)}, tmp_path
    )
    camera.start()
    try:
        rtsp = runnable[6]
        assert EXAMPLE_CAMERA in rtsp
        lines = run_block(rtsp.replace(EXAMPLE_CAMERA, camera.url("cam")), samples, sdk_server.url)
    finally:
        camera.stop()
    assert lines.splitlines()[-1] == "closed: True"
