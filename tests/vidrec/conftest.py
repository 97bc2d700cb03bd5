"""A ``vidrec serve`` for the SDK tests (tiny random bundles, RTSP sources on loopback allowed),
and a gateway with no worker behind it, both real processes on free ports."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# Helpers of the service tests; --import-mode=importlib keeps test directories off sys.path.
_TESTS = Path(__file__).resolve().parents[1]
for _helpers in ("cli", "inference", "ingest"):
    if str(_TESTS / "service" / _helpers) not in sys.path:
        sys.path.insert(0, str(_TESTS / "service" / _helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402
from rtsp_fixture import free_port  # noqa: E402
from serve_support import ServeProcess, kill, serve_env  # noqa: E402

from service.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``vidrec serve``: embedded Redis, one worker with a tiny clip and live model, gateway."""
    models = write_bundles(tmp_path_factory.mktemp("sdk-models"), (CLIP_MODEL, LIVE_MODEL))
    server = ServeProcess(serve_env(models, allow_private_sources="true"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lonely_gateway(sdk_server: ServeProcess) -> Iterator[str]:
    """``vidrec gateway`` on the server's Redis under a key prefix of its own, so no worker
    serves it: every clip and stream is refused with 503 ``no_worker`` and ``Retry-After: 1``."""
    redis_url = sdk_server.wait_for(r"embedded Redis on (\S+)").group(1)
    port = free_port()
    env = serve_env(None, redis_url=redis_url, key_prefix=f"lonely-{uuid.uuid4().hex[:8]}")
    command = [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    process = subprocess.Popen(
        [*command, "gateway", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, "vidrec gateway exited"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vidrec gateway did not answer /healthz"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(process.pid)
            process.wait()


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with clip.mp4 and stream.mp4, written by ``vidrec sample`` (as docs/SDK.md)."""
    root = tmp_path_factory.mktemp("samples")
    assert main(["sample", str(root / "clip.mp4")]) == 0
    assert main(["sample", str(root / "stream.mp4"), "--stream", "3"]) == 0
    return root
