"""The compose stack, built and run for real with podman, driven from outside as a user would.

scripts/local_images.py builds the images (a debootstrap base cached by a content tag, Redis,
Prometheus and redis_exporter from Debian's packages, vidrec from docker/Dockerfile with podman's
layer cache), then podman-compose starts docker/compose.yaml without Grafana (no image of it can
be had here; test_static.py checks its files). The tests then use the published ports only:
/readyz and the containers' HEALTHCHECK, a clip over REST with an API key, a live WebSocket
stream, Prometheus's HTTP API, and a worker killed while jobs are queued. Everything is torn
down at the end, volumes included.

Needs root, podman (runc), podman-compose and debootstrap (scripts/install_system_deps.sh); where
they are missing the tests fail and say what is missing. With a warm layer cache the module takes
a few minutes; the first build (debootstrap, torch) takes longer.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker/compose.yaml"
WORKDIR = Path(os.environ.get("DEPLOY_TEST_WORKDIR", "/var/tmp/vidrec-deploy"))
PROJECT = "vidrec-e2e"
# Grafana and the GPU worker stay out: podman-compose 1.0.3 has no profiles, so the services to
# start are named.
SERVICES = ("redis", "redis-exporter", "gateway", "worker", "prometheus")
WORKERS = 2
BUILD_TIMEOUT_S = 1800
VIDREC = str(Path(sys.executable).parent / "vidrec")
READY_TIMEOUT_S = 240

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 600)]


@dataclass
class Stack:
    """The running stack as a user reaches it."""

    gateway: str
    prometheus: str
    key: str
    env: dict[str, str]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require_tools() -> None:
    missing = [
        name
        for name in ("podman", "podman-compose", "runc", "debootstrap")
        if not shutil.which(name)
    ]
    if missing:
        pytest.fail(
            f"cannot run the compose stack: {', '.join(missing)} missing; install Debian's "
            "podman, buildah, podman-compose, runc, catatonit, debootstrap and "
            "golang-github-containernetworking-plugin-dnsname (scripts/install_system_deps.sh)"
        )
    if os.geteuid() != 0:
        pytest.fail("cannot run the compose stack: rootful podman and debootstrap need root")


def _build_images(log: Path) -> dict[str, str]:
    """NAME=value lines of scripts/local_images.py; fails with the end of its log."""
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts/local_images.py"), "--workdir", str(WORKDIR)],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(f"building the images failed ({log}):\n{log.read_text()[-3000:]}")
    return dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)


def _compose(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    log = WORKDIR / f"compose-{args[0]}.log"
    with log.open("w") as out:
        result = subprocess.run(
            ["podman-compose", "-p", PROJECT, "-f", str(COMPOSE_FILE), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(f"podman-compose {' '.join(args)} failed ({log}):\n{log.read_text()[-3000:]}")


def _podman(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _containers(env: dict[str, str]) -> list[str]:
    listed = _podman(
        env, "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format",
        "{{.Names}}",
    )  # fmt: skip
    return listed.stdout.split()


def _wait_ready(url: str, workers: int) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last: Any = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/readyz", timeout=5)
            last = answer.json()
            if answer.status_code == 200 and last["workers_ready"] >= workers:
                body: dict[str, Any] = last
                return body
        except (httpx.HTTPError, ValueError) as exc:
            last = exc
        time.sleep(1)
    pytest.fail(f"the stack did not become ready in {READY_TIMEOUT_S} s; last /readyz: {last}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    _require_tools()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    # One run at a time on a machine (CI and a developer share podman's storage and the ports'
    # project name): a second run waits here.
    with (WORKDIR / "e2e.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _run_stack()


def _run_stack() -> Iterator[Stack]:
    images = _build_images(WORKDIR / "build.log")
    key = "vrk_" + secrets.token_urlsafe(32)
    keys_file = WORKDIR / "e2e-api-keys.txt"
    # The stored form: name:scopes:sha256 of the key (docs/SECURITY.md); readable by the
    # containers' non-root user.
    keys_file.write_text(f"e2e:clips,live,admin:{hashlib.sha256(key.encode()).hexdigest()}\n")
    keys_file.chmod(0o644)
    gateway_port, prometheus_port = _free_port(), _free_port()
    env = {
        **os.environ,
        **images,
        "API_KEYS_FILE": str(keys_file),
        "GATEWAY_PORT": str(gateway_port),
        "PROMETHEUS_PORT": str(prometheus_port),
        # Two workers on the two shared cores of the project's machines.
        "WORKER_THREADS": "1",
    }
    # A run that died half-way may have left its containers and volumes.
    _compose(env, "down", "-v")
    try:
        _compose(env, "up", "-d", "--no-build", *SERVICES)
        gateway = f"http://127.0.0.1:{gateway_port}"
        _wait_ready(gateway, WORKERS)
        yield Stack(gateway, f"http://127.0.0.1:{prometheus_port}", key, env)
    finally:
        _compose(env, "down", "-v")
        # podman-compose 1.0.3 leaves the project's network behind.
        _podman(env, "network", "rm", "--force", f"{PROJECT}_default")
        left = _containers(env)
        assert not left, f"containers left after podman-compose down: {left}"


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip of a known action from the project's synthetic generator."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    subprocess.run(
        [VIDREC, "sample", "--action", "move_up", "--seed", "3",
         str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def _post_clip(stack: Stack, clip: Path, **data: str) -> httpx.Response:
    with clip.open("rb") as f:
        return httpx.post(
            f"{stack.gateway}/v1/clips",
            files={"file": ("clip.mp4", f, "video/mp4")},
            data=data,
            headers=stack.auth(),
            timeout=120,
        )


def _query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _eventually(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(2)
    pytest.fail(f"{what} not seen in {timeout_s} s; last: {last}")


def test_ready_and_containers_healthy(stack: Stack) -> None:
    ready = httpx.get(f"{stack.gateway}/readyz", timeout=5).json()
    assert ready == {"ready": True, "redis": True, "workers": WORKERS, "workers_ready": WORKERS}
    names = _containers(stack.env)
    for service in ("gateway", "worker"):
        container = f"{PROJECT}_{service}_1"
        assert container in names
        # The image's HEALTHCHECK (`vidrec health`), run in the container as the engine would.
        check = _podman(stack.env, "healthcheck", "run", container)
        assert check.returncode == 0, f"{container}: {check.stdout}{check.stderr}"
    # The web page and the offline API docs come with the image.
    for path in ("/", "/docs"):
        page = httpx.get(f"{stack.gateway}{path}", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    user = _podman(stack.env, "exec", f"{PROJECT}_worker_1", "id", "-u")
    assert user.stdout.strip() == "10001"
    write = _podman(stack.env, "exec", f"{PROJECT}_gateway_1", "touch", "/opt/vidrec/x")
    assert write.returncode != 0  # read-only root filesystem


def test_image_holds_no_build_tools_or_host_config(stack: Stack) -> None:
    # What the build mounted (pip's configuration, wheel directories) left nothing behind, and no
    # compiler came along.
    probe = (
        "import os, shutil; print(sorted(os.listdir('/opt'))); "
        "print([c for c in ('gcc', 'cc', 'g++', 'clang', 'make') if shutil.which(c)]); "
        "print([p for p in ('/etc/pip.conf', '/etc/xdg/pip', '/root/.config/pip') "
        "if os.path.exists(p)])"
    )
    shown = _podman(stack.env, "exec", f"{PROJECT}_gateway_1", "python3", "-c", probe)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split("\n")[:3] == ["['vidrec', 'vidrec-app']", "[]", "[]"]


def test_clip_over_rest_needs_a_key_and_is_answered(stack: Stack, clip_file: Path) -> None:
    refused = httpx.post(
        f"{stack.gateway}/v1/clips", files={"file": ("clip.mp4", clip_file.read_bytes())}
    )
    # The gateway binds 0.0.0.0 in its container, so VIDREC_AUTH=auto requires keys.
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    answer = _post_clip(stack, clip_file)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["labels"][0]["label"] == "move_up"
    assert body["compute"]["gmacs"] > 0


def _frames(path: Path) -> list[bytes]:
    jpegs = []
    with av.open(str(path)) as video:
        for frame in video.decode(video=0):
            buffer = io.BytesIO()
            frame.to_image().save(buffer, format="JPEG", quality=90)
            jpegs.append(buffer.getvalue())
    return jpegs


def test_live_websocket_stream(stack: Stack, tmp_path: Path) -> None:
    stream = tmp_path / "stream.mp4"
    subprocess.run(
        [VIDREC, "sample", "--stream", "2", "--seed", "5",
         str(stream)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    frames = _frames(stream)
    assert len(frames) >= 16
    url = stack.gateway.replace("http://", "ws://") + "/v1/streams/live?stride=4"

    async def run() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with connect(url, additional_headers=stack.auth(), open_timeout=30) as ws:
            events.append(json.loads(await ws.recv()))

            async def receive() -> None:
                async for message in ws:
                    events.append(json.loads(message))

            receiver = asyncio.create_task(receive())
            for jpeg in frames:
                await ws.send(jpeg)
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + 60
            while sum(e["type"] == "labels" for e in events) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await ws.send(json.dumps({"type": "close"}))
            await asyncio.wait_for(receiver, 30)
        return events

    events = asyncio.run(run())
    assert events[0]["type"] == "session", events[0]
    labels = [e for e in events if e["type"] == "labels"]
    assert len(labels) >= 2, events
    for event in labels:
        assert event["labels"] and event["compute"]["gmacs"] <= event["compute"]["dense_gmacs"]
    assert events[-1]["type"] == "closed", events[-1]


def test_prometheus_scrapes_gateway_and_workers(stack: Stack, clip_file: Path) -> None:
    assert _post_clip(stack, clip_file).status_code == 200
    up = _eventually(lambda: _query(stack, 'up{job="vidrec-gateway"} == 1'), 90, "gateway up")
    assert len(up) == 1
    # Worker families arrive through the gateway's scrape with a `worker` label, one per worker.
    workers = _eventually(
        lambda: (
            r
            if len(
                r := _query(stack, 'count by (worker) (vidrec_decode_seconds_count{worker!=""})')
            )
            == WORKERS
            else None
        ),
        90,
        f"{WORKERS} workers' series",
    )
    assert len({w["metric"]["worker"] for w in workers}) == WORKERS
    _eventually(
        lambda: _query(stack, 'vidrec_http_requests_total{route="/v1/clips", status="200"} > 0'),
        90,
        "the gateway's request counter",
    )
    _eventually(lambda: _query(stack, 'sum(vidrec_gmacs_total{worker!=""}) > 0'), 90, "GMACs spent")
    _eventually(lambda: _query(stack, "redis_memory_used_bytes > 0"), 90, "Redis memory")
    rules = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alerts = {r["name"] for group in rules for r in group["rules"]}
    assert {"VidrecNoWorker", "VidrecQueueLag", "VidrecRedisMemoryHigh"} <= alerts


def test_jobs_answered_after_a_worker_is_killed(stack: Stack, clip_file: Path) -> None:
    def live_workers() -> set[str]:
        models = httpx.get(f"{stack.gateway}/v1/models", headers=stack.auth(), timeout=10)
        return set(models.json()["workers"])

    before = live_workers()
    assert len(before) == WORKERS
    victim = f"{PROJECT}_worker_1"
    hostname = _podman(stack.env, "inspect", "--format", "{{.Config.Hostname}}", victim)
    victim_ids = {w for w in before if w.startswith(hostname.stdout.strip() + "-")}
    assert len(victim_ids) == 1, (before, hostname.stdout)
    jobs = []
    for _ in range(4):
        answer = _post_clip(stack, clip_file, wait="false")
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["status_url"])
    killed = _podman(stack.env, "kill", "--signal", "KILL", victim)
    assert killed.returncode == 0, killed.stderr
    jobs += [_post_clip(stack, clip_file, wait="false").json()["status_url"] for _ in range(2)]

    def finished() -> list[dict[str, Any]] | None:
        states = [
            httpx.get(f"{stack.gateway}{url}", headers=stack.auth(), timeout=10).json()
            for url in jobs
        ]
        return states if all(s["status"] not in ("queued", "running") for s in states) else None

    states = _eventually(finished, 180, "every job answered")
    for state in states:
        assert state["status"] == "done", state
        assert state["result"]["labels"][0]["label"] == "move_up"
    # The killed worker's heartbeat lapsed: it is gone from the live workers.
    _eventually(lambda: not (live_workers() & victim_ids), 60, "the killed worker leaving")


def test_a_stopped_worker_drains_and_exits_cleanly(stack: Stack) -> None:
    # SIGTERM reaches the worker through the container's init; it finishes what it took,
    # deregisters and exits 0 well before podman would resort to SIGKILL.
    container = f"{PROJECT}_worker_2"
    started = time.monotonic()
    stopped = _podman(stack.env, "stop", "--time", "60", container)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - started < 55
    state = _podman(stack.env, "inspect", "--format", "{{.State.ExitCode}}", container)
    assert state.stdout.strip() == "0", _podman(stack.env, "logs", "--tail", "20", container).stdout
