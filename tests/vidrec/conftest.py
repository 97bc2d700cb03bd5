"""A ``vidrec serve`` for the SDK tests (tiny random bundles, RTSP sources on loopback allowed),
and gateways on its Redis: one with no worker behind it, one that requires API keys. All are
real processes on free ports."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Helpers beside these tests and the service tests'; --import-mode=importlib keeps test directories
# off sys.path.
_TESTS = Path(__file__).resolve().parents[1]
for _helpers in (
    _TESTS / "vidrec",
    *(_TESTS / "service" / d for d in ("cli", "inference", "ingest")),
):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402
from sdk_support import KeyedGateway, embedded_redis, gateway  # noqa: E402
from serve_support import ServeProcess, serve_env  # noqa: E402

from service.apikeys import SCOPES, ApiKey, hash_key, new_key  # noqa: E402
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
    prefix = f"lonely-{uuid.uuid4().hex[:8]}"
    with gateway(embedded_redis(sdk_server), key_prefix=prefix) as url:
        yield url


@pytest.fixture(scope="session")
def keyed_gateway(sdk_server: ServeProcess) -> Iterator[KeyedGateway]:
    """``vidrec gateway`` with ``VIDREC_AUTH=on`` in front of the server's worker."""
    full, clips_only = new_key(), new_key()
    lines = [
        ApiKey("full", frozenset(SCOPES), hash_key(full)).line(),
        ApiKey("clipper", frozenset({"clips"}), hash_key(clips_only)).line(),
    ]
    with gateway(embedded_redis(sdk_server), auth="on", api_keys=";".join(lines)) as url:
        yield KeyedGateway(url, full, clips_only)


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with clip.mp4 and stream.mp4, written by ``vidrec sample`` (as docs/SDK.md)."""
    root = tmp_path_factory.mktemp("samples")
    assert main(["sample", str(root / "clip.mp4")]) == 0
    assert main(["sample", str(root / "stream.mp4"), "--stream", "3"]) == 0
    return root
