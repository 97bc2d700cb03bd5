"""A ``vidrec serve`` shared by the CLI tests that drive a running server (started once, on a
free port, with tiny random bundles; stopped with SIGTERM at the end of the session)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Helpers beside these tests and the inference tests' tiny bundles; --import-mode=importlib keeps
# test directories off sys.path.
_HERE = Path(__file__).resolve().parent
for _helpers in (_HERE, _HERE.parent / "inference"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402
from serve_support import ServeProcess, serve_env  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip model and a live model, tiny and random (the zoo's default names)."""
    return write_bundles(tmp_path_factory.mktemp("serve-models"), (CLIP_MODEL, LIVE_MODEL))


@pytest.fixture(scope="session")
def vidrec_server(tiny_models: Path) -> Iterator[ServeProcess]:
    """``vidrec serve`` (embedded Redis, one worker, gateway), ready; RTSP sources on loopback
    allowed so the RTSP client test can use a local camera."""
    server = ServeProcess(serve_env(tiny_models, allow_private_sources="true"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Puts the root logger back as pytest had it: a command run in this process
    (``main(["serve", ...])``) sets logging up for itself."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)
