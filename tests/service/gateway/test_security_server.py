"""API keys, limits, Origin, request ids and logs on a real ``vidrec gateway`` process.

The gateway is the CLI's (``vidrec gateway --port 0`` on 127.0.0.1 with ``VIDREC_AUTH=on``, as a
gateway bound to a public address would run), served by uvicorn with its real WebSocket stack;
the workers are stand-ins on the real queue. Its stderr (JSON logs at DEBUG) is kept to check
that no key and no frame bytes reach it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from gateway_support import LIVE_MODEL, StandInWorker
from PIL import Image
from websockets.exceptions import InvalidStatus

from service.apikeys import ApiKey, hash_key, new_key
from service.settings import Settings

pytestmark = pytest.mark.integration

GATEWAY_CODE = "import sys; from service.cli import main; sys.exit(main(sys.argv[1:]))"
START_TIMEOUT_S = 120.0
SCOPES = {"clipper": "clips", "viewer": "live", "limited": "clips"}


def _env(settings: Settings, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env.update(
        PYTHONUNBUFFERED="1",
        VIDREC_REDIS_URL=str(settings.redis_url),
        VIDREC_KEY_PREFIX=settings.key_prefix,
        VIDREC_HEARTBEAT_INTERVAL_S=str(settings.heartbeat_interval_s),
        VIDREC_HEARTBEAT_TTL_S=str(settings.heartbeat_ttl_s),
    )
    env.update({f"VIDREC_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class Gateway:
    """``vidrec gateway`` with JSON logs at DEBUG; stderr goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", GATEWAY_CODE, "gateway", "--port", "0", "--log-level", "debug"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until it listens (or exits)
        match = re.search(r"listening on ([^\s\"]+)", line)
        assert match, f"the gateway did not start: {line!r}\n{log_path.read_text()}"
        self.url = match.group(1)
        self.ws_url = self.url.replace("http://", "ws://")

    def stop(self) -> str:
        """Stops it; returns its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._log.close()
        return self.log_path.read_text()


@pytest.fixture
def keys() -> dict[str, str]:
    return {name: new_key() for name in SCOPES}


@pytest.fixture
def gateway(
    settings: Settings, keys: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Gateway, list[str]]]:
    """The gateway process, and its log once stopped (filled in after the test)."""
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(
        "\n".join(
            ApiKey(name, frozenset({SCOPES[name]}), hash_key(key)).line()
            for name, key in keys.items()
        )
        + "\n"
    )
    env = _env(
        settings,
        auth="on",
        api_keys_file=keys_file,
        log_format="json",
        rate_limit_rps=0.5,
        rate_limit_burst=4,
    )
    server = Gateway(env, tmp_path / "gateway.log")
    log: list[str] = []
    try:
        yield server, log
    finally:
        log.append(server.stop())


def _frame(marker: bytes) -> bytes:
    """A JPEG carrying ``marker`` in a comment segment, so its bytes are recognisable."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 77, np.uint8)).save(buf, format="JPEG", comment=marker)
    data = buf.getvalue()
    assert marker in data
    return data


def _status(exc: InvalidStatus) -> int:
    return int(exc.response.status_code)


def test_keys_scopes_limits_origin_and_ids_on_a_real_server(
    gateway: tuple[Gateway, list[str]],
    keys: dict[str, str],
    make_worker: Callable[..., StandInWorker],
    mp4: bytes,
) -> None:
    server, _log = gateway
    make_worker()
    bearer = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    marker = f"FRAME-{uuid.uuid4().hex}".encode()

    with httpx.Client(base_url=server.url, timeout=30) as http:
        # open routes
        health = http.get("/healthz")
        assert health.status_code == 200 and len(health.headers["x-request-id"]) == 32
        assert http.get("/metrics").status_code == 200
        # 401 without a key, with the client's request id kept
        missing = http.get("/v1/models", headers={"X-Request-ID": "trace-me-1"})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="vidrec"'
        assert missing.headers["x-request-id"] == "trace-me-1"
        assert missing.json()["error"]["code"] == "unauthorized"
        assert missing.json()["error"]["request_id"] == "trace-me-1"
        # 403 for a key without the scope; 200 with it
        refused = http.get("/v1/jobs/x", headers=bearer["viewer"])
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        answer = http.post(
            "/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")}, headers=bearer["clipper"]
        )
        assert answer.status_code == 200, answer.text
        # 429 with Retry-After once the key's burst (4) is spent; other keys are unaffected
        statuses = [http.get("/v1/jobs/x", headers=bearer["limited"]).status_code for _ in range(5)]
        assert statuses == [404, 404, 404, 404, 429]
        limited = http.get("/v1/jobs/x", headers=bearer["limited"])
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
        assert "VIDREC_RATE_LIMIT_RPS" in limited.json()["error"]["message"]
        assert http.get("/v1/jobs/x", headers=bearer["clipper"]).status_code == 404

    async def websockets_() -> dict[str, object]:
        seen: dict[str, object] = {}
        url = f"{server.ws_url}/v1/streams/live?model={LIVE_MODEL}&budget=all"
        # a browser's way: the key in the subprotocol list, accepted as "vidrec"
        async with websockets.connect(
            url,
            subprotocols=["vidrec", f"bearer.{keys['viewer']}"],  # type: ignore[list-item]
        ) as ws:
            seen["subprotocol"] = ws.subprotocol
            session = json.loads(await ws.recv())
            await ws.send(_frame(marker))
            labels = json.loads(await ws.recv())
            seen["events"] = (session["type"], labels["type"])
            seen["ids"] = (session["request_id"], labels["request_id"])
        for name, kwargs in {
            "no key": {},
            "wrong scope": {"additional_headers": bearer["clipper"]},
            "foreign origin": {
                "additional_headers": bearer["viewer"],
                "origin": "https://evil.example",
            },
        }.items():
            try:
                async with websockets.connect(url, **kwargs):  # type: ignore[arg-type]
                    seen[name] = 101
            except InvalidStatus as exc:
                seen[name] = _status(exc)
        return seen

    seen = asyncio.run(websockets_())
    assert seen["subprotocol"] == "vidrec"
    assert seen["events"] == ("session", "labels")
    ids = seen["ids"]
    assert isinstance(ids, tuple) and ids[0] == ids[1] and len(ids[0]) == 32
    assert (seen["no key"], seen["wrong scope"], seen["foreign origin"]) == (401, 403, 403)


def test_the_logs_are_json_with_ids_and_hold_no_key_and_no_frame(
    gateway: tuple[Gateway, list[str]],
    keys: dict[str, str],
    make_worker: Callable[..., StandInWorker],
) -> None:
    server, _log = gateway
    make_worker()
    marker = f"FRAME-{uuid.uuid4().hex}".encode()
    frame = _frame(marker)

    async def stream() -> None:
        url = f"{server.ws_url}/v1/streams/live?model={LIVE_MODEL}&budget=all"
        headers = {"Authorization": f"Bearer {keys['viewer']}", "X-Request-ID": "cam-trace-9"}
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.recv()
            await ws.send(frame)
            await ws.recv()
            await ws.send(marker + b"\x00 not an image")  # refused by the gateway's check
            await ws.recv()
        # a key in the wrong place must not be echoed either
        bad = f"{keys['viewer']}x"
        try:
            async with websockets.connect(url, subprotocols=["vidrec", f"bearer.{bad}"]):  # type: ignore[list-item]
                pass
        except InvalidStatus:
            pass

    asyncio.run(stream())
    with httpx.Client(base_url=server.url, timeout=30) as http:
        http.get("/v1/models", headers={"Authorization": f"Bearer {keys['clipper']}"})
        http.get("/v1/models", headers={"Authorization": f"Bearer {keys['clipper']}broken"})
    text = server.stop()

    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records, "the gateway logged nothing"
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record)
    access = [r for r in records if r["logger"] == "service.gateway.access"]
    live = next(r for r in access if r["request_id"] == "cam-trace-9")
    assert (live["route"], live["status"]) == ("/v1/streams/live", 101)
    assert live["duration_ms"] > 0
    assert (live["principal"], live["client"]) == ("viewer", "127.0.0.1")  # the key's name only
    assert any(r["status"] == 401 and r["route"] == "/v1/streams/live" for r in access)
    assert any(r["status"] == 200 and r["route"] == "/v1/models" for r in access)
    # nothing secret, no frame: in any form a logger might have written it
    for key in keys.values():
        for form in (key, key[4:], key[4:24], key[-20:], hash_key(key).hex()):
            assert form not in text, f"a key reached the log: {form}"
    for form in (marker.decode(), marker.hex(), frame[-24:].hex(), frame[2:20].hex(" ")):
        assert form not in text, f"frame bytes reached the log: {form}"
    assert "Bearer vrk" not in text and "bearer.vrk" not in text


def test_auth_on_without_keys_stops_the_gateway_with_a_clear_message(
    settings: Settings,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", GATEWAY_CODE, "gateway", "--port", "0"],
        env=_env(settings, auth="on"),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode == 2, done.stderr
    assert "API keys are required (VIDREC_AUTH is on) but none is configured" in done.stderr
    assert "vidrec keys new" in done.stderr
    assert "listening" not in done.stdout
