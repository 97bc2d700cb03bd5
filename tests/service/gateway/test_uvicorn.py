"""The gateway under a real uvicorn server, driven by real HTTP and WebSocket clients.

TestClient runs the app in-process and cancels a WebSocket handler the moment the client leaves;
uvicorn delivers a disconnect and lets the handler finish. Both must close the session.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from gateway_support import LIVE_MODEL, StandInWorker
from PIL import Image

from service.gateway import create_app
from service.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_http_and_websocket_over_a_real_server(
    server_url: str, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    worker = make_worker()
    with httpx.Client(base_url=f"http://{server_url}", timeout=10) as http:
        answer = http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["labels"][0]["label"] == "waving"

    async def stream() -> str:
        url = f"ws://{server_url}/v1/streams/live?model={LIVE_MODEL}&budget=all"
        async with websockets.connect(url) as ws:
            session = json.loads(await ws.recv())
            assert session["type"] == "session" and session["budget"] == {"keep_all": True}
            await ws.send(_jpeg())
            labels = json.loads(await ws.recv())
            assert labels["type"] == "labels" and labels["frame_index"] == 0
            assert labels["latency_ms"] >= 0
            return str(session["session_id"])

    session_id = asyncio.run(stream())  # leaves without a close message: a disconnect
    worker.wait_for(lambda ms: any(m.type == "close" for m in ms))
    with httpx.Client(base_url=f"http://{server_url}", timeout=10) as http:
        assert http.get(f"/v1/streams/{session_id}").json()["state"] == "closed"
        metrics = http.get("/metrics").text
    requests = "vidrec_http_requests_total"
    assert f'{requests}{{method="WS",route="/v1/streams/live",status="101"}} 1.0' in metrics
    assert f'{requests}{{method="POST",route="/v1/clips",status="200"}} 1.0' in metrics
