"""Benchmark: torch threads per worker under ``vidrec serve``, on a short live run.

For each thread count it starts ``vidrec serve`` (one worker, the shipped live bundle, default
settings apart from ``VIDREC_TORCH_THREADS``), streams ``--streams`` WebSocket clients at
``--fps`` frames per second of 112-pixel JPEG frames for ``--seconds``, and reports per run: frames
sent, processed and dropped (the sessions' own counters), labels received, and the worker's
frame-to-label latency (p50/p95 of the ``latency_ms`` of the labels events). ``auto`` is what the
service picks with no ``VIDREC_TORCH_THREADS``. Prints a table and writes JSON. Usage::

    vidrec bench live_threads [bench-results/live_threads.json] [--threads 1 2 auto]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from PIL import Image

from model_core.data import ClipSpec, generate_stream

SERVE_CODE = "import sys; from service.cli import main; sys.exit(main(sys.argv[1:]))"
READY_TIMEOUT_S = 180.0


def jpeg_frames(count: int, size: int = 112) -> list[bytes]:
    """JPEG frames of a synthetic action stream."""
    frames = generate_stream(count // 8 + 1, num_actions=2, spec=ClipSpec(size=size)).frames
    out = []
    for frame in frames[:count]:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(frame)).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


class Serve:
    """``vidrec serve --port 0`` with the given thread setting, until stopped."""

    def __init__(self, threads: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
        env.pop("OMP_NUM_THREADS", None)
        env["PYTHONUNBUFFERED"] = "1"
        # One client address opens every stream: no per-client quota or rate limit.
        env.update({"VIDREC_QUOTA_LIVE_SESSIONS": "0", "VIDREC_RATE_LIMIT_RPS": "0"})
        if threads != "auto":
            env["VIDREC_TORCH_THREADS"] = threads
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE_CODE, "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
            if "ready (id" in line:
                self.ready.set()

    def wait_ready(self) -> str:
        if not self.ready.wait(READY_TIMEOUT_S) or self.url is None:
            raise RuntimeError("vidrec serve did not become ready:\n" + "".join(self.lines[-20:]))
        return self.url

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def client(
    url: str, frames: list[bytes], fps: float, seconds: float, found: dict[str, Any]
) -> None:
    """One stream: sends frames at ``fps`` for ``seconds``, collects the labels events."""
    ws_url = url.replace("http://", "ws://") + "/v1/streams/live"
    latencies: list[float] = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        session = json.loads(await ws.recv())
        if session.get("type") != "session":
            raise RuntimeError(f"no session: {session}")
        found.setdefault("sessions", []).append(session["session_id"])

        async def receive() -> None:
            async for message in ws:
                event = json.loads(message)
                if event.get("type") == "labels":
                    latencies.append(float(event["latency_ms"]))

        reader = asyncio.create_task(receive())
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            await ws.send(frames[sent % len(frames)])
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / fps - time.monotonic()))
        await asyncio.sleep(1.0)  # the last labels
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    found.setdefault("sent", []).append(sent)
    found.setdefault("latencies", []).extend(latencies)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_one(threads: str, streams: int, fps: float, seconds: float) -> dict[str, Any]:
    serve = Serve(threads)
    try:
        url = serve.wait_ready()
        frames = jpeg_frames(64)
        found: dict[str, Any] = {}

        async def all_clients() -> None:
            await asyncio.gather(
                *(client(url, frames, fps, seconds, found) for _ in range(streams))
            )

        asyncio.run(all_clients())
        with httpx.Client(base_url=url, timeout=10) as http:
            counters = [
                http.get(f"/v1/streams/{sid}").json()["counters"] for sid in found["sessions"]
            ]
        latencies = found.get("latencies", [])
        chosen = re.findall(r"torch threads: (\d+)", "".join(serve.lines))
        return {
            "threads": threads,
            "threads_used": int(chosen[0]) if chosen else None,
            "streams": streams,
            "fps": fps,
            "seconds": seconds,
            "sent": sum(found["sent"]),
            "processed": sum(c["frames_processed"] for c in counters),
            "dropped": sum(c["frames_dropped"] for c in counters),
            "labels": len(latencies),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
        }
    finally:
        serve.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="bench-results/live_threads.json")
    parser.add_argument("--threads", nargs="+", default=["1", "2", "auto"])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    rows = [run_one(t, args.streams, args.fps, args.seconds) for t in args.threads]
    print(f"{args.streams} streams x {args.fps:g} fps x {args.seconds:g} s, shipped live bundle")
    print("| threads | used | sent | processed | dropped | labels | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['threads']} | {r['threads_used']} | {r['sent']} | {r['processed']} | "
            f"{r['dropped']} | {r['labels']} | {r['latency_p50_ms']:.0f} | "
            f"{r['latency_p95_ms']:.0f} |"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    out.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
