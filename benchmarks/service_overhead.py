"""What the running service adds to in-process inference (``vidrec bench service_overhead``).

Starts what ``vidrec serve`` starts (an embedded Redis, one worker subprocess, the gateway) on a
free port, drives it as clients would, and runs the same work in this process with the same
inference code (``ClipClassifier``, ``LiveRunner``) for the baseline:

1. clips, sequential: generated MP4 clips uploaded one at a time (``POST /v1/clips``, waiting for
   the answer); round-trip p50/p95 against decode + classify of the same bytes in-process.
2. clips, concurrent: ``--clip-concurrency`` uploads in flight; throughput against the
   in-process classifier taking the same clips in batches of that size (what the worker's
   batching can reach at best).
3. streams: N concurrent WebSocket sessions (``--sessions``, default 1 4 8) of generated streams
   sent as JPEG frames, each closed-loop (the next frame goes when the previous frame's labels
   event arrived; stride 1, so every frame has one); frame throughput and round-trip p50/p95
   against one batched ``LiveRunner`` step of N sessions (JPEG decode included) in-process.

Ratios (service / in-process) come from one run: each case runs in-process and through the
service back to back (sequential clips alternate one by one), so a change of load on a shared
machine hits both sides. The client, the gateway, Redis and the worker share this machine's
cores, which is part of what the ratios show. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from model_core.data import ClipSpec, generate_clip, generate_stream
from model_core.data.video_io import write_video
from service.inference import ClipClassifier, LiveRunner, ModelCatalog, pick_default, read_configs
from service.ingest import ClipLimits, FrameLimits, Sampling, decode_clip, decode_ws_frame

if not __package__:  # loaded by its path (vidrec bench): `benchmarks` from the checkout's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ServeProcess, finite, machine, percentile


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vidrec bench service_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--models-dir", type=Path, help="directory of bundles (default: the shipped demo ones)"
    )
    parser.add_argument("--clip-model", help="default: the directory's clip default")
    parser.add_argument("--live-model", help="default: the directory's live default")
    parser.add_argument("--clips", type=int, default=12, help="clips uploaded one at a time")
    parser.add_argument("--concurrent-clips", type=int, default=24, help="clips uploaded at once")
    parser.add_argument("--clip-concurrency", type=int, default=4, help="uploads in flight")
    parser.add_argument("--clip-frames", type=int, default=24, help="frames of each clip file")
    parser.add_argument("--size", type=int, default=128, help="side of the generated video")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--stream-frames", type=int, default=48, help="frames per session")
    parser.add_argument("--budget", type=float, default=0.25, help="fraction of tokens")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured clips and frames")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto, both sides")
    parser.add_argument("--out", default="docs/service_bench.json", help="JSON output")
    args = parser.parse_args(argv)
    for name in ("clips", "concurrent_clips", "clip_concurrency", "stream_frames", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.clip_frames < 8 or args.size < 32 or any(n < 1 for n in args.sessions):
        parser.error("--clip-frames >= 8, --size >= 32 and --sessions >= 1 please")
    return args


# Statistics.


def summary(latencies_s: Sequence[float], items: int, wall_s: float) -> dict[str, float]:
    """p50/p95/mean latency in ms and items per second (NaN for no latencies, None in the
    JSON)."""
    ms = [x * 1000.0 for x in latencies_s]
    p50, p95 = percentile(ms, 50), percentile(ms, 95)
    nan = float("nan")
    return {
        "items": items,
        "wall_s": wall_s,
        "throughput_per_s": items / wall_s if wall_s > 0 else nan,
        "p50_ms": nan if p50 is None else p50,
        "p95_ms": nan if p95 is None else p95,
        "mean_ms": statistics.fmean(ms) if ms else nan,
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# The work.


@dataclass
class Work:
    """The clips (MP4 bytes) and streams (JPEG frames) both sides process."""

    clips: list[bytes]
    streams: list[list[bytes]]


def make_work(args: argparse.Namespace, directory: Path) -> Work:
    spec = ClipSpec(frames=args.clip_frames, size=args.size, fps=10.0)
    count = args.warmup + max(args.clips, args.concurrent_clips)
    clips = []
    for seed in range(count):
        path = write_video(
            directory / f"clip{seed}.mp4", generate_clip(seed, spec=spec).frames, 10.0
        )
        clips.append(path.read_bytes())
    frames_needed = args.warmup + args.stream_frames
    streams = []
    for seed in range(max(args.sessions)):
        stream = generate_stream(seed, num_actions=3, spec=ClipSpec(size=args.size, fps=10.0))
        images = stream.frames
        while len(images) < frames_needed:
            images = np.concatenate([images, stream.frames])
        streams.append([_jpeg(image) for image in images[:frames_needed]])
    return Work(clips, streams)


def _jpeg(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# In-process baseline.


class InProcess:
    """The same work through ``ClipClassifier`` and ``LiveRunner`` in this process."""

    def __init__(self, args: argparse.Namespace, clip_model: str, live_model: str) -> None:
        self.args = args
        self.catalog = ModelCatalog.load(
            args.models_dir, sorted({clip_model, live_model}), args.device
        )
        self.classifier = ClipClassifier(self.catalog)
        self.clip_model = clip_model
        self.live = self.catalog.get(live_model)
        entry = self.catalog.get(clip_model)
        self.sampling = Sampling(num_frames=entry.frames)
        self.short_side = entry.config.preprocessing.resize_size
        self.limits = ClipLimits()
        self.frame_limits = FrameLimits()

    def classify(self, batch: list[bytes]) -> float:
        """Decodes and classifies the clips as one batch, as a worker does; seconds taken."""
        start = time.perf_counter()
        views = [
            decode_clip(data, self.sampling, self.limits, short_side=self.short_side).views
            for data in batch
        ]
        self.classifier.classify(self.clip_model, views, 5)
        return time.perf_counter() - start

    def clips_batched(self, clips: list[bytes], batch: int) -> dict[str, Any]:
        """The clips in batches of ``batch``; latency is a batch's time."""
        start = time.perf_counter()
        latencies = [self.classify(clips[i : i + batch]) for i in range(0, len(clips), batch)]
        return summary(latencies, len(clips), time.perf_counter() - start)

    def decode(self, jpeg: bytes) -> np.ndarray:
        """A live frame as the worker decodes it (read-only arrays copied, as it does)."""
        image = decode_ws_frame(jpeg, self.frame_limits).image
        return image if image.flags.writeable else image.copy()

    def streams(self, streams: list[list[bytes]], n: int) -> dict[str, Any]:
        """N sessions stepped together, one frame each per step (JPEG decode included)."""
        runner = LiveRunner(self.live, capacity=n, stride=1)
        ids = [f"s{i}" for i in range(n)]
        for session_id in ids:
            runner.open(session_id, {"fraction": self.args.budget})
        steps = []
        start = time.perf_counter()
        for k in range(len(streams[0])):
            if k == self.args.warmup:
                start = time.perf_counter()
            t0 = time.perf_counter()
            frames = {sid: self.decode(streams[i][k]) for i, sid in enumerate(ids)}
            runner.step(frames)
            if k >= self.args.warmup:
                steps.append(time.perf_counter() - t0)
        return summary(steps, n * len(steps), time.perf_counter() - start)


# The service.


def serve_env(args: argparse.Namespace) -> dict[str, str]:
    """The service's environment: this one with the embedded Redis (as `make run` has it) and
    the threads, stride and device of the in-process side."""
    env = dict(os.environ)
    env.pop("VIDREC_REDIS_URL", None)
    env.update(
        {
            "OMP_NUM_THREADS": str(args.threads),
            "VIDREC_TORCH_THREADS": str(args.threads),
            "VIDREC_STRIDE": "1",
            "VIDREC_DEVICE": args.device,
        }
    )
    if args.models_dir is not None:
        env["VIDREC_MODELS_DIR"] = str(args.models_dir)
    return env


def upload(client: httpx.Client, data: bytes, model: str) -> dict[str, Any]:
    response = client.post(
        "/v1/clips",
        files={"file": ("clip.mp4", data, "video/mp4")},
        data={"model": model, "top_k": "5"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def clips_sequential(
    url: str, local: InProcess, clips: list[bytes], model: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each clip in-process, then uploaded, in turn: a load change hits both sides alike."""
    local_s, service_s, timings = [], [], []
    with httpx.Client(base_url=url, timeout=120.0) as client:
        for data in clips:
            local_s.append(local.classify([data]))
            t0 = time.perf_counter()
            body = upload(client, data, model)
            service_s.append(time.perf_counter() - t0)
            timings.append(body.get("timing_ms") or {})
    service: dict[str, Any] = summary(service_s, len(clips), sum(service_s))
    service["server_timing_p50_ms"] = {
        key: percentile([t[key] for t in timings if key in t], 50)
        for key in sorted({k for t in timings for k in t})
    }
    return service, summary(local_s, len(clips), sum(local_s))


async def _concurrent_clips(
    url: str, clips: list[bytes], args: argparse.Namespace, model: str
) -> dict[str, Any]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for data in clips:
        queue.put_nowait(data)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=args.clip_concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:

        async def uploader() -> None:
            while not queue.empty():
                data = queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.post(
                    "/v1/clips",
                    files={"file": ("clip.mp4", data, "video/mp4")},
                    data={"model": model, "top_k": "5"},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(uploader() for _ in range(args.clip_concurrency)))
        wall = time.perf_counter() - start
    return summary(latencies, len(clips), wall)


async def service_streams(
    url: str, n: int, args: argparse.Namespace, work: Work, model: str
) -> dict[str, Any]:
    """N sessions at once, each sending its next frame when the previous one's event came."""
    from websockets.asyncio.client import connect

    ws_base = url.replace("http://", "ws://", 1)
    query = f"/v1/streams/live?model={model}&budget={args.budget}&stride=1"
    rtts: list[float] = []
    server_latencies: list[float] = []
    gmacs = dense = 0.0
    errors = 0
    barrier = asyncio.Event()
    opened = 0
    starts: list[float] = []

    async def session(index: int) -> None:
        nonlocal gmacs, dense, errors, opened
        async with connect(ws_base + query, max_size=None, open_timeout=60) as ws:
            first = json.loads(await ws.recv())
            if first.get("type") != "session":
                raise RuntimeError(f"stream refused: {first}")
            opened += 1
            if opened == n:
                barrier.set()
            await barrier.wait()
            frames = work.streams[index]
            for k, jpeg in enumerate(frames):
                if k == args.warmup:
                    starts.append(time.perf_counter())
                t0 = time.perf_counter()
                await ws.send(jpeg)
                while True:
                    event = json.loads(await ws.recv())
                    if event.get("type") in ("labels", "error"):
                        break
                if k < args.warmup:
                    continue
                rtts.append(time.perf_counter() - t0)
                if event["type"] == "error":
                    errors += 1
                    continue
                compute = event.get("compute") or {}
                gmacs += float(compute.get("gmacs", 0.0))
                dense += float(compute.get("dense_gmacs", 0.0))
                if isinstance(event.get("latency_ms"), int | float):
                    server_latencies.append(float(event["latency_ms"]) / 1000.0)
            await ws.send(json.dumps({"type": "close"}))

    await asyncio.gather(*(session(i) for i in range(n)))
    wall = time.perf_counter() - min(starts)
    result: dict[str, Any] = summary(rtts, n * args.stream_frames, wall)
    result["server_latency_p50_ms"] = percentile([x * 1000 for x in server_latencies], 50)
    result["server_latency_p95_ms"] = percentile([x * 1000 for x in server_latencies], 95)
    result["gmacs_per_frame"] = gmacs / max(1, len(rtts) - errors)
    result["dense_gmacs_per_frame"] = dense / max(1, len(rtts) - errors)
    result["errors"] = errors
    return result


# Report.


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    body = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(x) for x in (c, *(r[i] for r in body))) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def rows_of(
    service: dict[str, Any], local: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    rows = []

    def row(case: str, svc: dict[str, Any], base: dict[str, Any], unit: str) -> dict[str, Any]:
        return {
            "case": case,
            "unit": unit,
            "service /s": svc["throughput_per_s"],
            "in-proc /s": base["throughput_per_s"],
            "throughput ratio": ratio(svc["throughput_per_s"], base["throughput_per_s"]),
            "service p50 ms": svc["p50_ms"],
            "service p95 ms": svc["p95_ms"],
            "in-proc p50 ms": base["p50_ms"],
            "in-proc p95 ms": base["p95_ms"],
            "p50 ratio": ratio(svc["p50_ms"], base["p50_ms"]),
            "overhead p50 ms": svc["p50_ms"] - base["p50_ms"],
        }

    rows.append(
        row("clips sequential", service["clips"]["sequential"], local["clips_sequential"], "clip")
    )
    rows.append(
        row(
            f"clips x{args.clip_concurrency} concurrent",
            service["clips"]["concurrent"],
            local["clips_batched"],
            "clip",
        )
    )
    for n in args.sessions:
        rows.append(row(f"streams x{n}", service["streams"][n], local["streams"][n], "frame"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = read_configs(args.models_dir)
    clip_model = args.clip_model or pick_default(configs, "clip")
    live_model = args.live_model or pick_default(configs, "live")
    if clip_model is None or live_model is None:
        raise ValueError(f"the bundles in {args.models_dir} hold no clip or no live model")
    with tempfile.TemporaryDirectory(prefix="vidrec-bench-") as tmp:
        work = make_work(args, Path(tmp))
    print(f"models: {clip_model} (clips), {live_model} (streams); {args.threads} thread(s)")
    local = InProcess(args, clip_model, live_model)
    warm, clips = work.clips[: args.warmup], work.clips[args.warmup :]
    for data in warm:
        local.classify([data])

    print("starting vidrec serve (embedded Redis, 1 worker, gateway)")
    server = ServeProcess(serve_env(args), workers=1)
    service: dict[str, Any] = {"clips": {}, "streams": {}}
    baseline: dict[str, Any] = {"streams": {}}
    try:
        server.wait_ready()
        print(f"service ready at {server.url}")
        with httpx.Client(base_url=server.url, timeout=120.0) as client:
            for data in warm:
                upload(client, data, clip_model)
        # Each case runs in-process and through the service back to back (clip by clip for
        # the sequential case), so the ratios compare runs under the same machine load.
        sequential, baseline["clips_sequential"] = clips_sequential(
            server.url, local, clips[: args.clips], clip_model
        )
        service["clips"]["sequential"] = sequential
        batch = clips[: args.concurrent_clips]
        baseline["clips_batched"] = local.clips_batched(batch, args.clip_concurrency)
        service["clips"]["concurrent"] = asyncio.run(
            _concurrent_clips(server.url, batch, args, clip_model)
        )
        for n in args.sessions:
            baseline["streams"][n] = local.streams(work.streams[:n], n)
            service["streams"][n] = asyncio.run(
                service_streams(server.url, n, args, work, live_model)
            )
    finally:
        status = server.stop()
    rows = rows_of(service, baseline, args)
    print()
    print(table(rows, list(rows[0])))
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results = {
        "benchmark": "service",
        "machine": machine("host", "cpu", "cores", "gpu", "python", "torch"),
        "config": {**config, "clip_model": clip_model, "live_model": live_model},
        "rows": rows,
        "service": {
            "clips": service["clips"],
            "streams": {str(n): v for n, v in service["streams"].items()},
        },
        "in_process": {
            "clips_sequential": baseline["clips_sequential"],
            "clips_batched": baseline["clips_batched"],
            "streams": {str(n): v for n, v in baseline["streams"].items()},
        },
        "serve_exit_status": status,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(finite(results), indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
