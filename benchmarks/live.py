"""Live streams at scale (``vidrec bench live``): N WebSocket cameras at F fps against the service.

Starts ``vidrec serve`` with default settings (an embedded Redis, ``--workers`` worker processes,
the gateway on a free port and the shipped live bundle), or drives a running service
(``--url``). For each number of streams N it opens N live sessions at once and sends JPEG frames
(made once up front from the synthetic generator, at the model's 112 px and at 640x480) on a
fixed schedule, F frames a second per stream with the streams' phases spread over a frame
interval, never waiting for labels: the client measures the server, and records when it falls
behind its own schedule. Each stream is one asyncio task that sends and one that reads events.
With ``--clip-load C``, C clip uploads stay in flight beside the streams.

Per point (workers, frame size, N): frames sent, frames processed (the ``frame_index`` of the
last ``labels`` event), dropped (as the server reports them), frame-to-label latency (from
sending the frame that a ``labels`` event names in ``input_index``, its newest frame, to the
event's arrival), worker, gateway and Redis CPU, Redis memory (``INFO memory``), and a per-frame
time breakdown from the events' ``latency_ms`` and the workers' metrics (decode and model step
times). Prints a table, writes JSON and a plot of p95 latency and drops against N.

Streams come from distinct loopback addresses (127.0.x.y) when the service is on this machine,
as cameras would, so the per-address quota of live sessions and the handshake rate limit of the
default settings (``VIDREC_QUOTA_LIVE_SESSIONS``, ``VIDREC_RATE_LIMIT_RPS``) apply to each stream
and not to the load generator as a whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np
from websockets.exceptions import InvalidStatus

if not __package__:  # loaded by its path (vidrec bench): `benchmarks` from the checkout's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ServeProcess, finite, machine, percentile

OPEN_TIMEOUT_S = 60.0
CLOSE_WAIT_S = 5.0
# Events stopping for this long after the last frame was sent ends a point's tail.
QUIET_S = 1.0
COUNTERS_POLL_S = 0.2
# Before a point, open sessions (the previous point's closing) are waited for this long at most.
IDLE_WAIT_S = 10.0
# A handshake refused by the rate limit (429 rate_limited) is tried again this many times.
RATE_LIMIT_RETRIES = 5
# The clip uploads in flight when a point's sending ends get this long to be answered.
CLIP_WAIT_S = 120.0
# A worker's metrics reach the gateway with its heartbeat (VIDREC_HEARTBEAT_INTERVAL_S, 0.5 s):
# after a point they are waited for this long at most.
METRICS_WAIT_S = 5.0
REDIS_SAMPLE_S = 0.25
MiB = 1024 * 1024


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vidrec bench live",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--url", help="a running service (http://host:port); default: start 'vidrec serve'"
    )
    parser.add_argument(
        "--redis-url", help="with --url: its Redis, for INFO memory (default: not measured)"
    )
    parser.add_argument(
        "--worker-pids", type=int, nargs="+", default=[], help="with --url: workers' pids, for CPU"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("VIDREC_API_KEY"), help="Bearer key (VIDREC_API_KEY)"
    )
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 16, 32, 64],
        help="N to sweep (default: 1 2 4 8 16 32 64)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker counts of the own service (default: 1 2)",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["112", "640x480"],
        help="frame sizes, SIDE or WxH (default: 112 640x480)",
    )
    parser.add_argument(
        "--fps", type=float, default=15.0, help="frames per second per stream (default: 15)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sending per point (default: 10)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="first seconds left out of the latencies (default: 1)",
    )
    parser.add_argument(
        "--tail",
        type=float,
        default=5.0,
        help="most seconds to wait for the last frames (default: 5)",
    )
    parser.add_argument("--stride", type=int, help="labels every N frames (default: server's)")
    parser.add_argument("--budget", help="session budget (default: server's)")
    parser.add_argument("--model", help="live model (default: server's)")
    parser.add_argument("--models-dir", type=Path, help="own service: bundles (default: shipped)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="own service: a setting (VIDREC_*, OMP_NUM_THREADS) to change from its default "
        "(repeatable)",
    )
    parser.add_argument(
        "--clip-load",
        type=int,
        default=0,
        help="clip uploads kept in flight beside the streams (default: none)",
    )
    parser.add_argument(
        "--clip-form",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a form field of those uploads, e.g. clips=10 (repeatable)",
    )
    parser.add_argument(
        "--sources", type=int, default=2, help="distinct generated streams (default: 2)"
    )
    parser.add_argument("--jpeg-quality", type=int, default=85, help="of the frames (default: 85)")
    parser.add_argument(
        "--no-spread", action="store_true", help="all streams from one address (no 127.0.x.y)"
    )
    parser.add_argument(
        "--out", default="docs/live_bench.json", help="JSON output (default: docs/live_bench.json)"
    )
    parser.add_argument("--plot", help="plot output (default: --out with .png)")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.streams) or any(w < 1 for w in args.workers):
        parser.error("--streams and --workers must be at least 1")
    if args.fps <= 0 or args.duration <= 0 or args.warmup < 0 or args.tail < 0:
        parser.error("--fps and --duration must be positive, --warmup and --tail not negative")
    if args.warmup >= args.duration:
        parser.error("--warmup must be shorter than --duration")
    if args.clip_load < 0 or any("=" not in f for f in args.clip_form):
        parser.error("--clip-load must not be negative; --clip-form takes NAME=VALUE")
    if args.sources < 1 or not 1 <= args.jpeg_quality <= 100:
        parser.error("--sources >= 1 and --jpeg-quality in 1..100 please")
    try:
        args.frame_sizes = [parse_size(s) for s in args.sizes]
        args.env_overrides = dict(parse_env(e) for e in args.server_env)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def parse_size(text: str) -> tuple[int, int]:
    """``112`` -> (112, 112); ``640x480`` -> (640, 480), width first."""
    found = re.fullmatch(r"(\d+)(?:x(\d+))?", text.strip())
    if found is None:
        raise ValueError(f"a frame size is SIDE or WIDTHxHEIGHT, not {text!r}")
    width = int(found.group(1))
    height = int(found.group(2) or width)
    if not (16 <= width <= 1920 and 16 <= height <= 1920):
        raise ValueError(f"frame size {text!r}: each side 16..1920 please")
    return width, height


def parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not (name.startswith("VIDREC_") or name == "OMP_NUM_THREADS"):
        raise ValueError(f"--server-env takes VIDREC_NAME=VALUE or OMP_NUM_THREADS=N, not {text!r}")
    return name, value


# Statistics.


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean, p50/p95/p99 and max."""
    return {
        "count": len(values),
        "mean": float(np.mean(values)) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": float(max(values)) if values else None,
    }


# Frames.


def make_frames(size: tuple[int, int], sources: int, fps: float, quality: int) -> list[list[bytes]]:
    """JPEG frames of ``sources`` generated streams at ``size`` (width, height): generated
    square at the larger side, then centre-cropped."""
    from PIL import Image

    from model_core.data import ClipSpec, generate_stream

    width, height = size
    side = max(width, height)
    top, left = (side - height) // 2, (side - width) // 2
    result = []
    for seed in range(sources):
        stream = generate_stream(seed, num_actions=3, spec=ClipSpec(size=side, fps=fps))
        jpegs = []
        for image in stream.frames:
            buffer = io.BytesIO()
            crop = np.ascontiguousarray(image[top : top + height, left : left + width])
            Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
            jpegs.append(buffer.getvalue())
        result.append(jpegs)
    return result


# Processes: CPU from /proc (Linux), Redis memory from INFO.

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_s(pid: int, descendants: bool = False) -> float | None:
    """User + system CPU seconds of ``pid`` (and of its live descendants); None when it is
    gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    for child in _children(pid) if descendants else []:
        total += _proc_cpu_s(child, True) or 0.0
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _machine_busy_s() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in first[:8]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


class CpuMeter:
    """CPU seconds of named processes (and the whole machine) between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float | None] = {}
        self._machine: tuple[float, float] | None = None
        self._client = 0.0
        self._wall = 0.0

    def _cpu(self, name: str) -> float | None:
        # A worker's own subprocesses (isolated decodes) count as its; the gateway's children
        # are the workers and Redis, counted on their own.
        return _proc_cpu_s(self.pids[name], descendants=name.startswith("worker"))

    def start(self) -> None:
        self._start = {name: self._cpu(name) for name in self.pids}
        self._machine = _machine_busy_s()
        self._client = time.process_time()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """Percent of one core each process used (100 = one core busy), the machine's busy
        percent of all its cores, and what the other processes on it used."""
        wall = time.perf_counter() - self._wall
        result: dict[str, Any] = {"wall_s": wall}
        ours = 0.0
        for name in self.pids:
            now, then = self._cpu(name), self._start.get(name)
            used = None if now is None or then is None else max(0.0, now - then)
            result[name] = None if used is None else 100.0 * used / wall
            ours += used or 0.0
        client = time.process_time() - self._client
        result["client"] = 100.0 * client / wall
        ours += client
        machine = _machine_busy_s()
        if machine is not None and self._machine is not None:
            busy = machine[0] - self._machine[0]
            total = machine[1] - self._machine[1]
            cores = os.cpu_count() or 1
            result["machine_busy"] = 100.0 * busy / total if total > 0 else None
            # other processes, in the same unit as the rest (100 = one core)
            result["others"] = max(0.0, 100.0 * (busy - ours) / wall) if total > 0 else None
            result["cores"] = cores
        return result


class RedisMemory:
    """Samples ``used_memory`` (INFO memory) in a thread while a point runs."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        if url is not None:
            import redis

            self._client = redis.Redis.from_url(url, socket_timeout=2.0)

    def used(self) -> int | None:
        if self._client is None:
            return None
        try:
            return int(self._client.info("memory")["used_memory"])
        except Exception:  # a Redis that stopped answering: no figure, not a failed bench
            return None

    def start(self) -> int | None:
        self.samples = []
        self._stop.clear()
        first = self.used()
        if self._client is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return first

    def _sample(self) -> None:
        while not self._stop.wait(REDIS_SAMPLE_S):
            used = self.used()
            if used is not None:
                self.samples.append(used)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "used_max_bytes": max(self.samples) if self.samples else None,
            "used_end_bytes": self.used(),
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# Worker metrics (Prometheus text from the gateway's /metrics, every live worker merged).


def scrape(client: httpx.Client) -> dict[str, float] | None:
    """Sums over the workers of the samples the breakdown needs, by name and model
    (``name/model``, or ``name`` for a family without one); None when /metrics cannot be read."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = client.get("/metrics")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    wanted = {
        "vidrec_inference_seconds_sum",
        "vidrec_inference_seconds_count",
        "vidrec_decode_seconds_sum",
        "vidrec_decode_seconds_count",
        "vidrec_frames_processed_total",
    }
    sums: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name in wanted and "worker" in sample.labels:
                    model = sample.labels.get("model")
                    key = f"{sample.name}/{model}" if model else sample.name
                    sums[key] = sums.get(key, 0.0) + float(sample.value)
    except ValueError:
        return None
    return sums


def metric_deltas(
    before: dict[str, float] | None,
    after: dict[str, float] | None,
    live_models: Sequence[str],
    clips: bool,
) -> dict[str, Any]:
    """Mean model step of the live models, frames per step, and decode per frame (unless clip
    jobs ran: their decodes are in the same histogram) between two scrapes."""
    if before is None or after is None:
        return {}

    def delta(name: str, models: Sequence[str] = ()) -> float | None:
        keys = [f"{name}/{m}" for m in models] if models else [name]
        if not any(k in after for k in keys):
            return None
        return sum(after.get(k, 0.0) - before.get(k, 0.0) for k in keys)

    steps = delta("vidrec_inference_seconds_count", live_models)
    step_s = delta("vidrec_inference_seconds_sum", live_models)
    decodes, decode_s = delta("vidrec_decode_seconds_count"), delta("vidrec_decode_seconds_sum")
    if clips:
        decodes = decode_s = None
    frames = delta("vidrec_frames_processed_total", live_models)
    out: dict[str, Any] = {}
    if steps and step_s is not None:
        out["model_step_ms"] = 1000.0 * step_s / steps
        out["steps"] = steps
        if frames:
            out["frames_per_step"] = frames / steps
            out["model_ms_per_frame"] = 1000.0 * step_s / frames
    if decodes and decode_s is not None:
        out["decode_ms"] = 1000.0 * decode_s / decodes
    return out


def settled_scrape(
    client: httpx.Client, before: dict[str, float] | None, point: dict[str, Any]
) -> dict[str, float] | None:
    """A scrape once the workers' metrics count the frames the point's sessions processed
    (they reach the gateway with the next heartbeat), or after ``METRICS_WAIT_S``."""
    expected = point["server_counters"].get("frames_processed", 0)
    deadline = time.monotonic() + METRICS_WAIT_S
    while True:
        after = scrape(client)
        if before is None or after is None or time.monotonic() >= deadline:
            return after
        frames = sum(
            v - before.get(k, 0.0)
            for k, v in after.items()
            if k.startswith("vidrec_frames_processed_total/")
            and k.split("/", 1)[1] in point["models"]
        )
        if frames >= expected:
            return after
        time.sleep(0.25)


# The service.


def serve_env(args: argparse.Namespace) -> dict[str, str]:
    """The own service's environment: no VIDREC_* and no OMP_NUM_THREADS (the worker then picks
    its threads itself), so defaults, except what ``--server-env`` changes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VIDREC_") and k != "OMP_NUM_THREADS"
    }
    env.update(args.env_overrides)
    return env


# The load.


@dataclass
class Stream:
    """One camera: its socket, what it sent when, and the events it got."""

    index: int
    frames: list[bytes]
    offset: int
    ws: Any = None
    session_id: str | None = None
    model: str | None = None
    stride: int | None = None
    owner: str | None = None
    refused: str | None = None
    sent_at: list[float] = field(default_factory=list)  # perf_counter per input index
    lags: list[float] = field(default_factory=list)  # seconds behind schedule per frame
    # (arrival, input_index, latency_ms, frame_index, dropped) of each labels event
    labels: list[tuple[float, int | None, float | None, int | None, int | None]] = field(
        default_factory=list
    )
    errors: int = 0  # refused frames (error events naming an input_index)
    error_codes: Counter[str] = field(default_factory=Counter)
    ended: str | None = None  # why the server ended the session before the bench closed it
    closing: bool = False
    events: Counter[str] = field(default_factory=Counter)
    timing_sums: dict[str, float] = field(default_factory=dict)
    timing_count: int = 0
    last_event: float = 0.0

    def frame(self, k: int) -> bytes:
        return self.frames[(self.offset + k) % len(self.frames)]


def local_address(url: str, index: int, spread: bool) -> tuple[str, int] | None:
    """A loopback source address of its own for stream ``index`` when the service is on a
    loopback IPv4 address (Linux routes all of 127/8 to lo), else None."""
    if not spread:
        return None
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host) in ipaddress.ip_network(
            "127.0.0.0/8"
        )
    except ValueError:
        return None
    if not loopback:
        return None
    return f"127.0.{1 + index // 250}.{2 + index % 250}", 0


def ws_url(url: str, args: argparse.Namespace) -> str:
    """The live route with the session's parameters that were given (JSON budgets quoted)."""
    named = {"model": args.model, "budget": args.budget, "stride": args.stride}
    query = urlencode({k: v for k, v in named.items() if v})
    base = url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return base + "/v1/streams/live" + ("?" + query if query else "")


def _refusal(exc: InvalidStatus) -> tuple[str, float]:
    """The error code of a refused handshake's body, and its Retry-After in seconds."""
    response = exc.response
    try:
        code = str(json.loads(response.body or b"{}")["error"]["code"])
    except (ValueError, KeyError, TypeError):
        code = "unknown"
    try:
        retry_s = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        retry_s = 1.0
    return code, min(max(retry_s, 0.1), 5.0)


async def open_stream(stream: Stream, url: str, args: argparse.Namespace) -> None:
    """Connects and reads the session event; a refusal is recorded, not raised."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    extra: dict[str, Any] = {}
    address = local_address(url, stream.index, not args.no_spread)
    if address is not None:
        extra["local_addr"] = address
    first: Any = None
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            stream.ws = await connect(
                ws_url(url, args),
                additional_headers=headers,
                compression=None,  # JPEG does not deflate; a camera would not spend CPU on it
                proxy=None,
                max_size=None,
                open_timeout=OPEN_TIMEOUT_S,
                **extra,
            )
            first = json.loads(await asyncio.wait_for(stream.ws.recv(), OPEN_TIMEOUT_S))
            break
        except InvalidStatus as exc:  # refused before the handshake: 401, 403, 429
            code, retry_s = _refusal(exc)
            if code == "rate_limited" and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(retry_s)  # many cameras behind one key: they come back
                continue
            stream.refused = f"http {exc.response.status_code}: {code}"
            return
        except Exception as exc:  # timeouts, resets: counted as refused
            stream.refused = f"connect: {type(exc).__name__}"
            return
    if not isinstance(first, dict) or first.get("type") != "session":
        first = first if isinstance(first, dict) else {}
        stream.refused = str(first.get("code") or first.get("type") or "unknown")
        with contextlib.suppress(Exception):
            await stream.ws.close()
        return
    stream.session_id = first.get("session_id")
    stream.model = first.get("model")
    stream.owner = first.get("owner")
    if isinstance(first.get("stride"), int):
        stream.stride = first["stride"]


async def receive(stream: Stream) -> None:
    """Reads events until the socket closes; read defensively (the event shapes evolve)."""
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in stream.ws:
            now = time.perf_counter()
            stream.last_event = now
            if not isinstance(message, str):
                continue
            try:
                event = json.loads(message)
            except json.JSONDecodeError:
                stream.events["unparsed"] += 1
                continue
            if not isinstance(event, dict):
                continue
            kind = str(event.get("type"))
            stream.events[kind] += 1
            if kind == "labels":
                stream.labels.append(
                    (
                        now,
                        _int(event.get("input_index")),
                        _num(event.get("latency_ms")),
                        _int(event.get("frame_index")),
                        _int(event.get("dropped")),
                    )
                )
                _add_timing(stream, event)
            elif kind == "error":
                stream.error_codes[str(event.get("code"))] += 1
                stream.errors += int("input_index" in event)
            elif kind in ("end", "expired") and not stream.closing:
                stream.ended = str(event.get("reason") or event.get("state") or kind)
            if kind in ("closed", "end"):
                return
    except ConnectionClosed:
        pass
    if not stream.closing and stream.ended is None:
        stream.ended = "socket closed"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _add_timing(stream: Stream, event: dict[str, Any]) -> None:
    """Adds up any per-stage times an event carries (``timing_ms``, ``timings_ms``...)."""
    for key in ("timing_ms", "timings_ms", "timing", "breakdown_ms"):
        timing = event.get(key)
        if isinstance(timing, dict):
            for name, value in timing.items():
                number = _num(value)
                if number is not None:
                    stream.timing_sums[name] = stream.timing_sums.get(name, 0.0) + number
            stream.timing_count += 1
            return


async def send(stream: Stream, start: float, fps: float, count: int, give_up: float) -> None:
    """Sends ``count`` frames, frame k at ``start + k / fps``, whatever comes back; a frame due
    while the previous one is still being sent goes late (its lag is recorded), none is
    skipped, and sending stops at ``give_up`` (perf_counter) if the client fell that far behind."""
    from websockets.exceptions import ConnectionClosed

    for k in range(count):
        due = start + k / fps
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        if now > give_up:
            return
        stream.lags.append(max(0.0, now - due))
        stream.sent_at.append(now)
        try:
            await stream.ws.send(stream.frame(k))
        except ConnectionClosed:
            stream.sent_at.pop()
            stream.lags.pop()
            return


def accounted(live: list[Stream], counters: dict[str, dict[str, Any]]) -> bool:
    """Whether the server received every frame each open session sent and processed, dropped
    or lost each one (read defensively: a counter it does not report is not waited for)."""
    for stream in live:
        if stream.ended is not None:
            continue
        c = counters.get(stream.session_id or "")
        if c is None:
            return False
        received = c.get("frames_received")
        done = [c.get(k) for k in ("frames_processed", "frames_dropped", "frames_lost")]
        if isinstance(received, int) and received < len(stream.sent_at):
            return False
        handled = sum(x for x in done if isinstance(x, int))
        if isinstance(received, int) and done[0] is not None and handled < received:
            return False
    return True


def settled(stream: Stream) -> bool:
    """The newest labels event names one of the last ``stride`` frames sent."""
    if not stream.sent_at:
        return True
    if not stream.labels or stream.labels[-1][1] is None:
        return False
    return stream.labels[-1][1] >= len(stream.sent_at) - (stream.stride or 1)


async def list_counters(url: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each open session's server-side counters (``GET /v1/streams``), by session id."""
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0, headers=headers) as client:
            response = await client.get("/v1/streams")
        sessions = response.json().get("sessions", []) if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return {}
    return {
        str(s.get("session_id")): s.get("counters") or {}
        for s in sessions
        if isinstance(s, dict) and isinstance(s.get("counters"), dict)
    }


async def close_stream(stream: Stream, reader: asyncio.Task[None]) -> None:
    stream.closing = True
    with contextlib.suppress(Exception):
        await stream.ws.send(json.dumps({"type": "close"}))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(reader), CLOSE_WAIT_S)
    reader.cancel()
    with contextlib.suppress(Exception):
        await stream.ws.close()


async def run_load(
    url: str,
    n: int,
    sources: list[list[bytes]],
    args: argparse.Namespace,
    meters: Any,
    clip: bytes | None = None,
) -> tuple[list[Stream], dict[str, Any]]:
    """Opens ``n`` sessions, sends for ``--duration`` seconds (with ``--clip-load`` uploads of
    ``clip`` in flight meanwhile), waits for the tail, closes."""
    streams = [
        Stream(i, sources[i % len(sources)], (i * 13) % len(sources[i % len(sources)]))
        for i in range(n)
    ]
    # The previous point's sessions gone from the workers first, so they take no slots.
    idle_by = time.perf_counter() + IDLE_WAIT_S
    while await list_counters(url, args) and time.perf_counter() < idle_by:
        await asyncio.sleep(COUNTERS_POLL_S)
    open_started = time.perf_counter()
    await asyncio.gather(*(open_stream(s, url, args) for s in streams))
    timing: dict[str, Any] = {"open_s": time.perf_counter() - open_started}
    live = [s for s in streams if s.refused is None]
    readers = {s.index: asyncio.create_task(receive(s)) for s in live}
    count = round(args.duration * args.fps)
    start = time.perf_counter() + 0.2
    meters.start()
    stop_clips = asyncio.Event()
    clip_load = ClipLoad()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    # Each uploader from an address of its own too (after the streams'), for the rate limit.
    clip_clients = [
        httpx.AsyncClient(
            base_url=url,
            timeout=120.0,
            headers=headers,
            transport=httpx.AsyncHTTPTransport(local_address=address[0]) if address else None,
        )
        for address in (
            local_address(url, n + i, not args.no_spread)
            for i in range(args.clip_load if clip is not None else 0)
        )
    ]
    form = dict(f.split("=", 1) for f in args.clip_form)
    uploaders = (
        [
            asyncio.create_task(upload_clips(client, clip, form, stop_clips, clip_load))
            for client in clip_clients
        ]
        if clip is not None
        else []
    )
    # Phases spread over one frame interval, as unsynchronised cameras send.
    await asyncio.gather(
        *(
            send(
                s,
                start + (j / max(1, len(live))) / args.fps,
                args.fps,
                count,
                start + 2 * args.duration,
            )
            for j, s in enumerate(live)
        )
    )
    sent_done = time.perf_counter()
    timing["send_s"] = sent_done - start
    stop_clips.set()  # the uploads in flight finish while the tail runs
    deadline = sent_done + args.tail
    # First the server's counters: every frame sent received, and processed or dropped.
    counters = await list_counters(url, args)
    while time.perf_counter() < deadline and not accounted(live, counters):
        await asyncio.sleep(COUNTERS_POLL_S)
        counters = await list_counters(url, args)
    # Then the last labels events on their way (or none coming for a while).
    while time.perf_counter() < deadline and not all(settled(s) for s in live):
        latest = max((s.last_event for s in live), default=0.0)
        if time.perf_counter() - max(latest, sent_done) > QUIET_S:
            break
        await asyncio.sleep(0.05)
    timing["tail_s"] = time.perf_counter() - sent_done
    clips = clip_figures(clip_load, len(uploaders), sent_done - start)
    usage = meters.stop()
    # Their answers, so no job of this point runs into the next one.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*uploaders), CLIP_WAIT_S)
    for client in clip_clients:
        await client.aclose()
    await asyncio.gather(*(close_stream(s, readers[s.index]) for s in live))
    extra = {"timing": timing, "counters": counters, "usage": usage}
    if uploaders:
        extra["clip_load"] = clips
    return streams, extra


# Clip uploads beside the streams.


def make_clip(fps: float) -> bytes:
    """An MP4 of a generated 16-frame action clip at 112 px."""
    import tempfile

    from model_core.data import ClipSpec, generate_clip
    from model_core.data.video_io import write_video

    with tempfile.TemporaryDirectory(prefix="vidrec-bench-") as tmp:
        frames = generate_clip(0, spec=ClipSpec(frames=16, size=112, fps=fps)).frames
        return write_video(Path(tmp) / "clip.mp4", frames, fps).read_bytes()


@dataclass
class ClipLoad:
    """What the clip uploaders got while a point ran."""

    latencies: list[float] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)


async def upload_clips(
    client: httpx.AsyncClient, clip: bytes, form: dict[str, str], stop: asyncio.Event, out: ClipLoad
) -> None:
    """Uploads the clip again and again, each once the previous one was answered, until
    ``stop``; a 202 (answer not there in time) is followed on its status_url."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = await client.post(
                "/v1/clips", files={"file": ("clip.mp4", clip, "video/mp4")}, data=form
            )
            body = response.json()
            while response.status_code == 202 and isinstance(body, dict):
                await asyncio.sleep(0.2)
                response = await client.get(str(body.get("status_url")))
                body = response.json()
                if not isinstance(body, dict) or body.get("status") not in ("queued", "running"):
                    break
        except (httpx.HTTPError, ValueError) as exc:
            out.failed[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 200 and not (isinstance(body, dict) and body.get("error")):
            out.latencies.append(time.perf_counter() - started)
        else:
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            out.failed[f"{response.status_code} {code}"] += 1
            await asyncio.sleep(0.5)


def clip_figures(load: ClipLoad, uploaders: int, seconds: float) -> dict[str, Any]:
    return {
        "uploaders": uploaders,
        "done": len(load.latencies),
        "per_s": len(load.latencies) / seconds if seconds > 0 else None,
        "failed": dict(load.failed),
        "latency_ms": distribution([1000.0 * x for x in load.latencies]),
    }


# One point's figures.


def summarise(
    streams: list[Stream], extra: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    live = [s for s in streams if s.refused is None]
    sent = sum(len(s.sent_at) for s in live)
    latencies: list[float] = []
    server: list[float] = []
    processed = dropped = 0
    for s in live:
        warm_until = (s.sent_at[0] + args.warmup) if s.sent_at else 0.0
        for arrival, index, latency_ms, _, _ in s.labels:
            if index is None or not 0 <= index < len(s.sent_at) or s.sent_at[index] < warm_until:
                continue
            latencies.append(1000.0 * (arrival - s.sent_at[index]))
            if latency_ms is not None:
                server.append(latency_ms)
        processed += max((x[3] for x in s.labels if x[3] is not None), default=0)
        dropped += max((x[4] for x in s.labels if x[4] is not None), default=0)
    counters = extra["counters"]
    server_counts: dict[str, int] = {}
    for s in live:
        for name, value in (counters.get(s.session_id or "") or {}).items():
            if isinstance(value, int):
                server_counts[name] = server_counts.get(name, 0) + value
    # the larger of the two: the events say what had been dropped at their time
    dropped_reported = max(dropped, server_counts.get("frames_dropped", 0))
    lags = [1000.0 * x for s in live for x in s.lags]
    interval_ms = 1000.0 / args.fps
    events: Counter[str] = Counter()
    for s in live:
        events.update(s.events)
    timing_count = sum(s.timing_count for s in live)
    event_timing = {
        name: sum(s.timing_sums.get(name, 0.0) for s in live) / timing_count
        for name in sorted({n for s in live for n in s.timing_sums})
    }
    refused = Counter(s.refused for s in streams if s.refused is not None)
    codes: Counter[str] = Counter()
    for s in live:
        codes.update(s.error_codes)
    return {
        "streams": len(streams),
        "opened": len(live),
        "refused": dict(refused),
        "ended_early": dict(Counter(s.ended for s in live if s.ended is not None)),
        "error_codes": dict(codes),
        "models": sorted({s.model for s in live if s.model}),
        "stride": sorted({s.stride for s in live if s.stride}),
        "owners": dict(Counter(s.owner for s in live if s.owner)),
        "frames_sent": sent,
        "frames_processed": processed,
        "frames_dropped": dropped_reported,
        "frames_refused": sum(s.errors for s in live),
        "drop_fraction": dropped_reported / sent if sent else None,
        "server_counters": server_counts,
        "events": dict(events),
        "latency_ms": distribution(latencies),
        "server_latency_ms": distribution(server),
        "event_timing_ms": event_timing,
        "client": {
            "lag_ms": distribution(lags),
            "late_frames": sum(1 for x in lags if x > interval_ms),
            "late_fraction": (sum(1 for x in lags if x > interval_ms) / len(lags))
            if lags
            else None,
            "unsent_frames": len(live) * round(args.duration * args.fps) - sent,
        },
        **extra["timing"],
    }


def breakdown(point: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """Where a labelled frame's time goes, in ms (means over the point), from what the events
    and the workers' metrics carry; the rest is derived and named so."""
    rtt = point["latency_ms"]["mean"]
    srv = point["server_latency_ms"]["mean"]
    out: dict[str, Any] = {"round_trip": rtt, "server": srv}
    if rtt is not None and srv is not None:
        # client -> gateway, and published event -> Redis -> gateway relay -> client
        out["outside_server"] = rtt - srv
    decode, batch, step = (
        metrics.get("decode_ms"),
        metrics.get("frames_per_step"),
        metrics.get("model_step_ms"),
    )
    out.update({"decode_per_frame": decode, "frames_per_step": batch, "model_step": step})
    if decode is not None and batch is not None:
        # a step decodes every frame of its batch, then runs the model on them all
        out["decode_per_step"] = decode * batch
    if srv is not None and step is not None and out.get("decode_per_step") is not None:
        out["queue_and_wait"] = srv - step - out["decode_per_step"]
    out.update({f"event_{k}": v for k, v in point.get("event_timing_ms", {}).items()})
    return out


MISSING = [
    "the gateway's part: receiving a frame and putting it on the owner's inbox in Redis "
    "(inside 'server')",
    "waiting in Redis for the worker to read the frame vs waiting in the session's backlog for a "
    "step (together in 'queue + wait')",
    "publishing the labels event onto the session's Redis stream (inside 'queue + wait')",
    "the gateway relaying the event from Redis to the socket (inside 'outside server', with the "
    "WebSocket hops)",
]


# Report.


def label_of(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def rows_of(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        lat, cpu, mem = p["latency_ms"], p["cpu_percent"], p["redis_memory"]
        workers = [v for k, v in cpu.items() if k.startswith("worker") and v is not None]
        used, start = mem.get("used_max_bytes"), mem.get("used_start_bytes")
        rows.append(
            {
                "workers": p["workers"],
                "frames": p["size"],
                "streams": p["streams"],
                "opened": p["opened"],
                "ended early": sum(p["ended_early"].values()),
                "sent": p["frames_sent"],
                "processed": p["frames_processed"],
                "dropped": p["frames_dropped"],
                "drop %": 100.0 * p["drop_fraction"] if p["drop_fraction"] is not None else None,
                "p50 ms": lat["p50"],
                "p95 ms": lat["p95"],
                "p99 ms": lat["p99"],
                "server p50 ms": p["server_latency_ms"]["p50"],
                "worker CPU %": sum(workers) if workers else None,
                "gateway CPU %": cpu.get("gateway"),
                "Redis start MiB": start / MiB if start is not None else None,
                "Redis MiB": used / MiB if used is not None else None,
                "clips/s": p["clip_load"]["per_s"] if p.get("clip_load") else None,
                "late %": 100.0 * p["client"]["late_fraction"]
                if p["client"]["late_fraction"] is not None
                else None,
            }
        )
    return rows


def breakdown_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        b = p["breakdown_ms"]
        rows.append(
            {
                "workers": p["workers"],
                "frames": p["size"],
                "streams": p["streams"],
                "round trip": b.get("round_trip"),
                "outside server": b.get("outside_server"),
                "server": b.get("server"),
                "queue+wait": b.get("queue_and_wait"),
                "decode/step": b.get("decode_per_step"),
                "model step": b.get("model_step"),
                "frames/step": b.get("frames_per_step"),
                "decode/frame": b.get("decode_per_frame"),
                # the events' own timing_ms of their newest frame, when they carry it
                "event wait": b.get("event_queue_wait"),
                "event decode": b.get("event_decode"),
                "event model": b.get("event_inference"),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no points)"
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.3g}"
        return str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(x) for x in (c, *(r[i] for r in body))) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def plot(points: list[dict[str, Any]], path: Path) -> bool:
    """p95 latency and drop fraction against streams, a line per (workers, frame size)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter, ScalarFormatter
    except ImportError:
        return False
    fig, (ax_lat, ax_drop) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for p in points:
        series.setdefault((p["workers"], p["size"]), []).append(p)
    for (workers, size), items in sorted(series.items(), key=lambda kv: str(kv[0])):
        items = sorted(items, key=lambda p: p["streams"])
        xs = [p["streams"] for p in items]
        name = f"{workers} worker{'s' if workers != 1 else ''}, {size}"
        p95 = [p["latency_ms"]["p95"] for p in items]
        ax_lat.plot(xs, [np.nan if v is None else v for v in p95], marker="o", label=name)
        drops = [p["drop_fraction"] for p in items]
        ax_drop.plot(xs, [np.nan if v is None else 100 * v for v in drops], marker="o", label=name)
    streams = sorted({p["streams"] for p in points})
    for ax in (ax_lat, ax_drop):
        ax.set_xscale("log", base=2)
        ax.set_xticks(streams)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("concurrent streams")
        ax.grid(True, alpha=0.3)
    ax_lat.set_yscale("log")
    ax_lat.yaxis.set_major_formatter(ScalarFormatter())
    ax_lat.set_ylabel("p95 frame-to-label latency (ms)")
    ax_lat.axhline(100, color="grey", linestyle="--", linewidth=1, label="100 ms")
    ax_drop.set_ylabel("frames dropped (% of sent)")
    ax_drop.axhline(1, color="grey", linestyle="--", linewidth=1, label="1%")
    worst = max((100 * (p["drop_fraction"] or 0.0) for p in points), default=0.0)
    ax_drop.set_ylim(0, max(5.0, 1.1 * worst))
    ax_lat.legend(fontsize=8)
    ax_drop.legend(fontsize=8)
    fig.suptitle("vidrec bench live")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# The sweep.


def measure_point(
    url: str,
    n: int,
    frames: list[list[bytes]],
    args: argparse.Namespace,
    pids: dict[str, int],
    redis_url: str | None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    memory = RedisMemory(redis_url)
    with httpx.Client(base_url=url, timeout=10.0, headers=headers) as client:
        before = scrape(client)
        used_start = memory.start()
        cpu = CpuMeter(pids)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        try:
            streams, extra = asyncio.run(run_load(url, n, frames, args, cpu, args.clip_bytes))
        finally:
            redis_figures = memory.stop()
            memory.close()
        point = summarise(streams, extra, args)
        after = settled_scrape(client, before, point)
    usage = extra["usage"]
    point["cpu_percent"] = {k: v for k, v in usage.items() if k not in ("wall_s", "cores")}
    point["load_average_1m"] = load_before
    point["clip_load"] = extra.get("clip_load")
    point["redis_memory"] = {"used_start_bytes": used_start, **redis_figures}
    metrics = metric_deltas(before, after, point["models"], bool(point["clip_load"]))
    point["worker_metrics"] = metrics
    point["breakdown_ms"] = breakdown(point, metrics)
    return point


def sweep(
    url: str,
    args: argparse.Namespace,
    frames: dict[str, list[list[bytes]]],
    workers: int | None,
    pids: dict[str, int],
    redis_url: str | None,
    points: list[dict[str, Any]],
) -> None:
    for size, sources in frames.items():
        for n in args.streams:
            point = measure_point(url, n, sources, args, pids, redis_url)
            point = {"workers": workers, "size": size, **point}
            points.append(point)
            row = rows_of([point])[0]
            print(
                f"  {workers or '?'} worker(s) {size} x{n}: opened {point['opened']}, "
                f"sent {point['frames_sent']}, processed {point['frames_processed']}, "
                f"dropped {point['frames_dropped']}, p95 {table_cell(row['p95 ms'])} ms, "
                f"late {table_cell(row['late %'])}%",
                flush=True,
            )


def table_cell(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    frames = {}
    for size in args.frame_sizes:
        frames[label_of(size)] = make_frames(size, args.sources, args.fps, args.jpeg_quality)
        sizes = [len(f) for source in frames[label_of(size)] for f in source]
        print(f"frames {label_of(size)}: {len(sizes)} JPEGs, mean {np.mean(sizes) / 1024:.1f} KiB")
    args.clip_bytes = make_clip(args.fps) if args.clip_load else None
    points: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    if args.url:
        pids = {f"worker{i + 1}": pid for i, pid in enumerate(args.worker_pids)}
        print(f"driving {args.url}")
        if local_address(args.url, 0, not args.no_spread) is None:
            print(
                "note: every stream comes from this machine's one address, so the server's "
                "per-client quota of live sessions (VIDREC_QUOTA_LIVE_SESSIONS) and "
                "its rate limit count them together: raise them there, or use a key (--api-key) "
                "whose quota fits"
            )
        sweep(args.url, args, frames, None, pids, args.redis_url, points)
    else:
        for workers in args.workers:
            print(f"starting vidrec serve --workers {workers} (embedded Redis, defaults)")
            server = ServeProcess(serve_env(args), workers, args.models_dir)
            try:
                server.wait_ready()
                info = server.worker_info()
                print(f"service ready at {server.url}: workers {info}", flush=True)
                sweep(server.url, args, frames, workers, server.pids(), server.redis_url, points)
            finally:
                status = server.stop()
            services.append(
                {
                    "workers": workers,
                    "worker_info": info,
                    "exit_status": status,
                    "log_warnings": server.warnings(),
                }
            )
    rows = rows_of(points)
    print()
    print(table(rows))
    print()
    print("per-frame time (ms, means):")
    print(table(breakdown_rows(points)))
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("api_key", "frame_sizes", "env_overrides", "clip_bytes")
    }
    results = {
        "benchmark": "live",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine("host", "cpu", "cores", "memory_bytes", "os", "python"),
        "config": {**config, "server_env": args.env_overrides, "own_service": not args.url},
        "frame_bytes_mean": {
            size: float(np.mean([len(f) for source in fs for f in source]))
            for size, fs in frames.items()
        },
        "rows": rows,
        "breakdown_rows": breakdown_rows(points),
        "breakdown_missing": MISSING,
        "points": points,
        "services": services,
        "wall_s": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(finite(results), indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {out} ({results['wall_s']:.0f} s)")
    png = Path(args.plot) if args.plot else out.with_suffix(".png")
    if plot(points, png):
        print(f"wrote {png}")
    else:
        print("matplotlib not installed: no plot")
    return 0 if all(s["exit_status"] == 0 for s in services) else 1


if __name__ == "__main__":
    sys.exit(main())
