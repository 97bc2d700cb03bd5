"""Benchmark of the clip ingest path: sampled decoding against decoding every frame.

Writes (once, then reuses) a 60 s 1280x720 30 fps H.264 MP4 with a keyframe every 2 s, then times:

- ``bare_decode_all``: PyAV's bare loop over every frame, nothing converted (the baseline);
- ``bare_decode_rgb8``: the same loop up to the last of the 8 frames uniform sampling wants,
  converting those 8 to RGB;
- ``ingest_sequential``: ``decode_clip`` with seeking off (index pass, checks, every frame decoded
  up to the last wanted one, 8 converted): the whole ingest path doing ``bare_decode_rgb8``'s work;
- ``ingest_sparse``: ``decode_clip`` as the service runs it, seeking to the keyframe before each of
  the 8 frames;
- ``ingest_sparse_resize224``: the same, scaled to a 224-pixel short side in swscale;
- ``ingest_multiview_3x3``: 3 temporal clips x 3 crops (24 frames) with seeking;
- ``ingest_sparse_isolated``: ``ingest_sparse`` in a child process (``decode_clip_isolated``);
- ``worker_decoder``: what the worker runs on an upload by default (``clip_decoder(Settings())``:
  isolated, with its CPU-time and memory budgets), scaled to 224 as the models want; compare
  with ``ingest_sparse_resize224``, the same work in process;
- ``probe``: the index pass and one frame, no sampling.

Prints a table with ratios and writes JSON. Usage::

    vidrec bench ingest_decode [bench-results/ingest_decode.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

from service.ingest import Sampling, decode_clip, decode_clip_isolated, probe_clip
from service.settings import Settings
from service.worker.decode import clip_decoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench-results" / "ingest_decode.json"
CLIP = ROOT / "bench-results" / "ingest_720p_60s.mp4"
WIDTH, HEIGHT, FPS, SECONDS, GOP = 1280, 720, 30, 60, 60


def write_clip(path: Path) -> None:
    """Encodes the benchmark clip: moving gradients, so the encoder has real motion to code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream(
            "h264", rate=FPS, options={"preset": "veryfast", "sc_threshold": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = GOP
        for i in range(FPS * SECONDS):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[..., 0] = (xs + 4 * i) % 256
            frame[..., 1] = (ys + 2 * i) % 256
            frame[..., 2] = ((xs + ys) // 4 + i) % 256
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())


def bare_decode(data: bytes, convert: set[int] | None) -> int:
    """PyAV's plain loop.

    Converts the frames whose index is in ``convert`` to RGB and stops after the last of them;
    decodes every frame when ``convert`` is None.
    """
    decoded = 0
    last = max(convert) if convert else None
    with av.open(io.BytesIO(data), mode="r") as container:
        for i, frame in enumerate(container.decode(video=0)):
            decoded += 1
            if convert is not None and i in convert:
                frame.to_ndarray(format="rgb24")
            if last is not None and i >= last:
                break
    return decoded


def run_cases(cases: dict[str, Callable[[], int]], repeats: int) -> dict[str, dict[str, Any]]:
    """Times every case ``repeats`` times after one warm-up each, round-robin.

    Interleaving the cases puts them all under the same background load, which on a shared
    machine moves far more than any one case's own variation. Each case returns frames decoded.
    """
    decoded = {name: fn() for name, fn in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            decoded[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "runs": repeats,
            "frames_decoded": decoded[name],
        }
        for name in cases
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, prints the table and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    if not CLIP.exists():
        print(f"writing {CLIP.relative_to(ROOT)} ...", file=sys.stderr)
        write_clip(CLIP)
    data = CLIP.read_bytes()
    info = probe_clip(data)
    wanted = set(decode_clip(data, Sampling(num_frames=8)).frame_indices.ravel().tolist())
    worker_decode = clip_decoder(Settings())

    def ingest(sampling: Sampling, **kwargs: Any) -> Callable[[], int]:
        return lambda: decode_clip(data, sampling, **kwargs).frames_decoded

    cases: dict[str, Callable[[], int]] = {
        "bare_decode_all": lambda: bare_decode(data, None),
        "bare_decode_rgb8": lambda: bare_decode(data, wanted),
        "ingest_sequential": ingest(Sampling(num_frames=8), allow_seek=False),
        "ingest_sparse": ingest(Sampling(num_frames=8)),
        "ingest_sparse_resize224": ingest(Sampling(num_frames=8), short_side=224),
        "ingest_multiview_3x3": ingest(Sampling(num_frames=8, num_clips=3, num_crops=3)),
        "ingest_sparse_isolated": lambda: decode_clip_isolated(data).frames_decoded,
        "worker_decoder": lambda: (
            worker_decode(data, Sampling(num_frames=8), short_side=224).frames_decoded
        ),
        "probe": lambda: 1 if probe_clip(data) else 0,  # the index pass plus one decoded frame
    }
    results = run_cases(cases, args.repeats)
    ratios: dict[str, float] = {}
    for stat in ("median_s", "min_s"):
        t = {name: result[stat] for name, result in results.items()}
        suffix = stat.removesuffix("_s")
        ratios |= {
            f"speedup_sparse_vs_decode_all_{suffix}": t["bare_decode_all"] / t["ingest_sparse"],
            f"speedup_sparse_resize_vs_decode_all_{suffix}": (
                t["bare_decode_all"] / t["ingest_sparse_resize224"]
            ),
            f"overhead_ingest_vs_bare_same_work_{suffix}": (
                t["ingest_sequential"] / t["bare_decode_rgb8"]
            ),
            f"overhead_isolated_vs_in_process_{suffix}": (
                t["ingest_sparse_isolated"] / t["ingest_sparse"]
            ),
            f"overhead_worker_decoder_vs_in_process_{suffix}": (
                t["worker_decoder"] / t["ingest_sparse_resize224"]
            ),
            f"added_ms_worker_decoder_{suffix}": (
                (t["worker_decoder"] - t["ingest_sparse_resize224"]) * 1000
            ),
        }
    base = results["bare_decode_all"]["median_s"]

    print(
        f"clip: {info.width}x{info.height}, {info.num_frames} frames, {info.duration_s:.0f} s, "
        f"{info.codec}, {info.num_keyframes} keyframes, {len(data) / 1e6:.1f} MB"
    )
    print(f"{'case':<26}{'median s':>10}{'min s':>8}{'decoded':>9}{'x bare':>9}")
    for name, result in results.items():
        print(
            f"{name:<26}{result['median_s']:>10.3f}{result['min_s']:>8.3f}"
            f"{result['frames_decoded']:>9}{result['median_s'] / base:>9.3f}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")

    report = {
        "benchmark": "ingest_decode",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "pyav": av.__version__,
            "ffmpeg": ".".join(str(v) for v in av.library_versions["libavcodec"]),
        },
        "clip": {
            "width": info.width,
            "height": info.height,
            "frames": info.num_frames,
            "duration_s": info.duration_s,
            "keyframes": info.num_keyframes,
            "codec": info.codec,
            "bytes": len(data),
        },
        "repeats": args.repeats,
        "results": results,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
