"""Time the synthetic action dataset: milliseconds per clip and per stream frame, on one core.

Prints a table and writes JSON (default ``bench-results/dataset.json``)::

    .venv/bin/python scripts/bench_dataset.py [--clips 300] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from model_core.data import TRAIN_SEEDS, ClipSpec, generate_batch, generate_stream


def time_clips(spec: ClipSpec, clips: int) -> float:
    """Median over five runs of the milliseconds per clip of ``generate_batch``."""
    generate_batch(TRAIN_SEEDS[:20], spec)  # warm up caches and allocators
    runs = []
    for r in range(5):
        seeds = TRAIN_SEEDS[r * clips : (r + 1) * clips]
        start = time.perf_counter()
        generate_batch(seeds, spec)
        runs.append((time.perf_counter() - start) * 1e3 / clips)
    return sorted(runs)[len(runs) // 2]


def time_stream(spec: ClipSpec) -> float:
    """Milliseconds per frame of a long stream."""
    start = time.perf_counter()
    stream = generate_stream(0, num_actions=40, spec=spec)
    return (time.perf_counter() - start) * 1e3 / len(stream.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="clips per timed run")
    parser.add_argument("--out", type=Path, default=Path("bench-results/dataset.json"))
    args = parser.parse_args()

    rows = []
    for frames, size in [(8, 112), (16, 112), (8, 224), (16, 224)]:
        spec = ClipSpec(frames=frames, size=size)
        rows.append(
            {
                "frames": frames,
                "size": size,
                "ms_per_clip": round(time_clips(spec, args.clips), 2),
                "ms_per_stream_frame": round(time_stream(spec), 3),
            }
        )
    print(f"{'frames':>6} {'size':>5} {'ms/clip':>8} {'clips/s':>8} {'ms/stream frame':>16}")
    for row in rows:
        ms = row["ms_per_clip"]
        print(
            f"{row['frames']:>6} {row['size']:>5} {ms:>8.2f} {1e3 / ms:>8.0f} "
            f"{row['ms_per_stream_frame']:>16.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
