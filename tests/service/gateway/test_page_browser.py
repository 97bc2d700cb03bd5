"""The web page in a real browser against a real server.

Debian's chromium, driven by Playwright, opens the page of a ``vidrec serve`` (gateway, worker and
embedded Redis, the shipped demo bundles), uploads a generated clip and streams a fake camera that
plays a generated video file. Labels must appear for both, every request must stay on the
server's origin and the page must log no error (a Content-Security-Policy violation is one). The
screenshots in docs/PAGE.md are taken here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import httpx
import numpy as np
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    WebSocket,
    expect,
    sync_playwright,
)

from model_core.data import CLASS_NAMES, ClipSpec, generate_clip

_CLI_TESTS = Path(__file__).resolve().parents[1] / "cli"
if str(_CLI_TESTS) not in sys.path:
    sys.path.insert(0, str(_CLI_TESTS))

from serve_support import ServeProcess, serve_env  # noqa: E402

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
# No network of its own: no updates, no sync, no QUIC probes; the page gets nothing else.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every run takes the screenshots; VIDREC_UPDATE_SCREENSHOTS=1 writes them over docs/img (the ones
# docs/PAGE.md shows), otherwise they go to a scratch folder so a test run leaves the tree clean.
DOC_SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "img"
SCREENSHOTS = (
    DOC_SCREENSHOTS
    if os.environ.get("VIDREC_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "vidrec-page-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
FPS = 10
LABEL_TIMEOUT_MS = 90_000  # first answers on two loaded cores


def _frames(label: str, frames: int, size: int, seed: int) -> np.ndarray:
    """``(frames, size, size, 3)`` uint8 frames of a generated clip doing ``label``."""
    spec = ClipSpec(frames=frames, size=size, fps=FPS)
    return generate_clip(seed, label=CLASS_NAMES.index(label), spec=spec).frames


def _write_video(path: Path, frames: np.ndarray, container: str, codec: str) -> Path:
    with av.open(str(path), mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=FPS)
        assert isinstance(stream, av.VideoStream)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An H.264 MP4 to upload and a Y4M file for chromium's fake camera (which loops it)."""
    directory = tmp_path_factory.mktemp("page-videos")
    clip = _frames("move_right", 24, 112, seed=7)
    camera = _frames("rotate_clockwise", 40, 224, seed=11)
    return {
        "clip": _write_video(directory / "move_right.mp4", clip, "mp4", "libx264"),
        "camera": _write_video(directory / "camera.y4m", camera, "yuv4mpegpipe", "rawvideo"),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    """``vidrec serve`` with the shipped demo bundles, ready."""
    process = ServeProcess(serve_env(None))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, videos: dict[str, Path]) -> Iterator[Browser]:
    """Chromium whose camera plays ``videos["camera"]`` and which grants it without asking."""
    assert CHROMIUM.exists(), "install Debian's chromium (scripts/install_system_deps.sh)"
    fake_camera = [
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={videos['camera']}",
        "--use-fake-ui-for-media-stream",
    ]
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_camera
    )
    try:
        yield browser
    finally:
        browser.close()


class PageLog:
    """What a page asked for and what it complained about."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.events: dict[str, list[dict[str, Any]]] = {}  # WebSocket URL -> events received
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", self._websocket)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)

    def _websocket(self, ws: WebSocket) -> None:
        self.requests.append(ws.url)
        events = self.events.setdefault(ws.url, [])
        ws.on("framereceived", lambda payload: events.append(json.loads(payload)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def foreign(self) -> list[str]:
        """Requests that left the server's origin (blob: and data: URLs are the page's own)."""
        netloc = urlsplit(self.origin).netloc
        return [
            url
            for url in self.requests
            if not url.startswith(("blob:", "data:")) and urlsplit(url).netloc != netloc
        ]


@pytest.fixture
def page(browser: Browser, server: ServeProcess) -> Iterator[tuple[Page, PageLog]]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    log = PageLog(page, server.url)
    try:
        yield page, log
    finally:
        context.close()


def _models(server: ServeProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    return body


def _open(page: Page, server: ServeProcess) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#server.ok", timeout=30_000)
    expect(page.locator("#live-model")).not_to_have_value("")


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    # Polled from here: the page's CSP forbids the eval that wait_for_function's polling uses.
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("route", "title"),
    [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")],
)
def test_the_api_docs_render_from_this_server_alone(
    page: tuple[Page, PageLog], server: ServeProcess, route: str, title: str
) -> None:
    tab, log = page
    tab.goto(server.url + route)
    heading = tab.locator(title).first
    heading.wait_for(timeout=30_000)
    assert heading.inner_text().startswith("vidrec")
    # The operations are listed: the OpenAPI document was fetched and rendered.
    tab.get_by_text("/v1/clips").first.wait_for()
    assert log.foreign() == []
    assert log.problems == []


def test_upload_a_clip_and_see_its_labels_timing_and_windows(
    page: tuple[Page, PageLog], server: ServeProcess, videos: dict[str, Path]
) -> None:
    tab, log = page
    _open(tab, server)
    models = _models(server)
    assert tab.input_value("#clip-model") == models["defaults"]["clip"]

    tab.set_input_files("#clip-file", str(videos["clip"]))
    with tab.expect_response(re.compile(r"/v1/clips$"), timeout=LABEL_TIMEOUT_MS) as answered:
        tab.click("#clip-submit")
    response = answered.value
    assert response.status == 200, response.text()
    answer = response.json()
    assert response.request.headers.get("authorization") is None  # no key entered

    names = tab.locator("#clip-labels .name")
    names.first.wait_for()
    shown = names.all_inner_texts()
    assert shown == [item["label"] for item in answer["labels"]]
    assert len(shown) == 5  # the form's default top_k
    assert set(shown) <= set(CLASS_NAMES)
    # One timeline row per view the worker sampled, a tick per frame, and the time breakdown.
    views = answer["sampled"]["timestamps_s"]
    assert len(views) == 3  # the form's default: three windows
    assert tab.locator("#clip-timeline .row").count() == len(views)
    assert tab.locator("#clip-timeline .tick").count() == sum(len(v) for v in views)
    legend = tab.inner_text("#clip-timing-legend")
    for part in ("queue wait", "decode", "inference"):
        assert part in legend
    assert f"{answer['compute']['gmacs']:.3f} GMACs" in tab.inner_text("#clip-compute")

    # The clip replayed through the live model: a segment per labels event, as the socket said.
    video = tab.locator("#clip-video")
    _wait_until(lambda: video.evaluate("v => v.readyState") >= 2, 30, "the preview's first frame")
    tab.click("#clip-replay")
    expect(tab.locator("#clip-replay-status")).to_contain_text(
        "labels events", timeout=LABEL_TIMEOUT_MS
    )
    (replay,) = [url for url in log.events if "/v1/streams/live" in url]
    assert "stride=4" in replay
    events = [e for e in log.events[replay] if e["type"] == "labels"]
    frames = answer["sampled"]["clip"]["num_frames"]
    assert [e["input_index"] for e in events] == list(range(3, frames, 4))
    segments = tab.locator("#clip-live .seg").all_inner_texts()
    assert segments == [e["labels"][0]["label"] for e in events]
    totals = events[-1]["totals"]
    assert f"{totals['gmacs']:.3f} GMACs spent" in tab.inner_text("#clip-replay-status")
    # The seek back to the start: the preview shows the first frame again for the screenshot.
    video.evaluate("v => { v.currentTime = 0; }")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.locator("#upload").screenshot(path=str(SCREENSHOTS / "page_upload.png"))
    assert log.foreign() == []
    assert log.problems == []

    # A file that is not a video: the page shows the server's refusal.
    text = videos["clip"].with_name("notes.mp4")
    text.write_text("not a video\n")
    tab.set_input_files("#clip-file", str(text))
    with tab.expect_response(re.compile(r"/v1/clips$")) as refused:
        tab.click("#clip-submit")
    assert refused.value.status == 415
    error = tab.locator("#clip-error")
    error.wait_for()
    assert error.inner_text().startswith("not_a_video ")
    # The browser logs the refused request itself; nothing else went wrong.
    assert [p for p in log.problems if "415" not in p] == []


def test_the_camera_streams_and_its_label_is_overlaid(
    page: tuple[Page, PageLog], server: ServeProcess
) -> None:
    tab, log = page
    _open(tab, server)
    live_model = _models(server)["defaults"]["live"]
    assert tab.input_value("#live-model") == live_model

    tab.click("#camera-start")
    overlay = tab.locator("#overlay-label")
    overlay.wait_for(timeout=LABEL_TIMEOUT_MS)
    expect(overlay).not_to_have_text("", timeout=LABEL_TIMEOUT_MS)
    label = overlay.evaluate("node => node.firstChild.textContent")
    assert label in CLASS_NAMES
    assert "session" in tab.inner_text("#camera-status")
    # The gauge shows GMACs spent against dense.
    gauge = tab.text_content("#gauge-pct") or ""
    assert re.fullmatch(r"\d+(\.\d)?%", gauge), gauge
    numbers = tab.inner_text("#live-numbers")
    assert "dense would be" in numbers and "GMACs" in numbers

    # The slider changes the session's budget; the server confirms it.
    tab.locator("#budget").fill("0.5")
    tab.locator("#budget").dispatch_event("change")
    expect(tab.locator("#budget-now")).to_contain_text("50% of the tokens")
    # Labels keep coming under the new budget.
    before = tab.inner_text("#live-numbers")
    _wait_until(
        lambda: tab.inner_text("#live-numbers") != before,
        LABEL_TIMEOUT_MS / 1000,
        "a labels event after the budget changed",
    )
    tab.locator("#camera").screenshot(path=str(SCREENSHOTS / "page_camera.png"))

    # The camera's session is listed with the open sessions; its events can be followed.
    session_id = tab.text_content("#camera-status") or ""
    short = re.search(r"session (\w+)", session_id)
    assert short is not None, session_id
    tab.click("#sessions-refresh")
    row = tab.locator("#sessions-rows tr", has_text=short.group(1))
    row.wait_for()
    assert "live" in row.inner_text() and live_model in row.inner_text()
    row.get_by_role("button", name="Events").click()
    tab.locator("#events li", has_text="labels").first.wait_for(timeout=LABEL_TIMEOUT_MS)
    assert tab.locator("#events li").first.inner_text().startswith("session")
    tab.locator("#sessions").screenshot(path=str(SCREENSHOTS / "page_sessions.png"))

    tab.click("#camera-stop")
    expect(tab.locator("#camera-status")).to_have_text("stopped")
    # Stopping closes the session: the events end and the list no longer has it.
    tab.locator("#events li", has_text="end").first.wait_for(timeout=30_000)
    tab.click("#sessions-refresh")
    row.wait_for(state="detached", timeout=30_000)
    assert log.foreign() == []
    assert log.problems == []


# Keys of the documented shape (``vrk_`` and 43 URL-safe characters); the server stores hashes.
STREAM_KEY = "vrk_" + "s" * 43
CLIPS_KEY = "vrk_" + "c" * 43


def _key_line(name: str, scopes: str, key: str) -> str:
    return f"{name}:{scopes}:{hashlib.sha256(key.encode()).hexdigest()}"


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[ServeProcess]:
    """``vidrec serve`` that requires API keys: one may upload and stream, one may only upload."""
    keys = ";".join(
        [_key_line("page", "clips,live", STREAM_KEY), _key_line("uploads", "clips", CLIPS_KEY)]
    )
    process = ServeProcess(serve_env(None, auth="on", api_keys=keys))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def _use_key(tab: Page, key: str) -> None:
    tab.fill("#api-key", key)
    tab.click("#key-form button")
    expect(tab.locator("#key-state")).to_have_text("key set")


def test_with_keys_required_the_page_sends_the_key_over_http_and_websockets(
    browser: Browser, keyed_server: ServeProcess, videos: dict[str, Path]
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        tab = context.new_page()
        log = PageLog(tab, keyed_server.url)
        tab.goto(keyed_server.url + "/")
        # The page itself is open; the API is not, and the page says what to do.
        expect(tab.locator("#notice")).to_contain_text("asks for an API key")

        # A key without the live scope: the refused handshake is explained.
        _use_key(tab, CLIPS_KEY)
        tab.click("#camera-start")
        expect(tab.locator("#camera-error")).to_contain_text("forbidden", timeout=30_000)
        assert "lacks the scope" in tab.inner_text("#camera-error")

        _use_key(tab, STREAM_KEY)
        expect(tab.locator("#live-model")).not_to_have_value("")
        expect(tab.locator("#notice")).to_be_hidden()
        tab.set_input_files("#clip-file", str(videos["clip"]))
        with tab.expect_response(re.compile(r"/v1/clips$"), timeout=LABEL_TIMEOUT_MS) as answered:
            tab.click("#clip-submit")
        assert answered.value.status == 200
        assert answered.value.request.headers["authorization"] == f"Bearer {STREAM_KEY}"
        tab.locator("#clip-labels .name").first.wait_for()

        # The WebSocket carries the key as a subprotocol; the server accepts with "vidrec".
        tab.click("#camera-start")
        expect(tab.locator("#overlay-label")).not_to_have_text("", timeout=LABEL_TIMEOUT_MS)
        assert (
            tab.locator("#overlay-label").evaluate("n => n.firstChild.textContent") in CLASS_NAMES
        )
        tab.click("#camera-stop")
        expect(tab.locator("#camera-status")).to_have_text("stopped")

        assert log.foreign() == []
        # The browser logs the refusals it was sent (401, 403, the refused handshake); nothing else.
        refusals = ("401", "403", "WebSocket connection")
        assert [p for p in log.problems if not any(r in p for r in refusals)] == []
    finally:
        context.close()
