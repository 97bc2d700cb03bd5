"""Accuracy of the demo bundles on clips of other lengths and frame rates than they were trained
on (8 frames at 10 fps), through the path an upload takes.

Held-out clips of every class are generated at each (frames, fps), written as H.264 MP4 and
decoded by ``decode_clip`` with the service's plan (the model's frame count, spread uniformly
over the clip); every bundle then labels the same frames. A clip of 8 frames at 5 fps shows each
action twice as far per frame as training did, one at 20 fps half as far; 16 frames at 10 fps,
sampled to 8, likewise doubles the motion per frame, and 24 frames at 30 fps spans the training
clip's 0.8 s. Prints a table and writes JSON. Usage::

    vidrec bench clip_lengths [docs/clip_lengths_bench.json] [--clips-per-class 20]

"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, NUM_CLASSES, ClipSpec, generate_clip
from model_core.data.video_io import write_video
from service.inference import ClipClassifier, ModelCatalog
from service.ingest import Sampling, decode_clip

if not __package__:  # loaded by its path (vidrec bench): `benchmarks` from the checkout's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "clip_lengths_bench.json"
# (frames, fps); the first is the training clips' shape.
KINDS = ((8, 10.0), (8, 5.0), (8, 20.0), (16, 10.0), (24, 30.0), (32, 20.0))
# Past every training run's held-out evaluation (offset 0) and the zoo tests' fresh clips.
SEED_OFFSET = 20_000


def measure(
    catalog: ModelCatalog,
    names: Sequence[str],
    kind: tuple[int, float],
    per_class: int,
    scratch: Path,
) -> list[dict[str, Any]]:
    """Top-1 of each model on ``per_class`` clips of every class of one (frames, fps) kind."""
    frames, fps = kind
    entries = [catalog.get(name) for name in names]
    plans = {(e.frames, e.config.preprocessing.resize_size) for e in entries}
    classifier = ClipClassifier(catalog)
    correct = dict.fromkeys(names, 0)
    total = per_class * NUM_CLASSES
    for i in range(total):
        clip = generate_clip(HELDOUT_SEEDS[SEED_OFFSET + i], spec=ClipSpec(frames=frames, fps=fps))
        data = write_video(scratch / "clip.mp4", clip.frames, fps=fps).read_bytes()
        # Bundles that sample alike share one decode.
        views = {
            (t, side): decode_clip(data, Sampling(num_frames=t), short_side=side).views
            for t, side in plans
        }
        for entry in entries:
            key = (entry.frames, entry.config.preprocessing.resize_size)
            (answer,) = classifier.classify(entry.name, [views[key]], top_k=1)
            correct[entry.name] += answer.labels[0][0] == CLASS_NAMES[clip.label]
    return [
        {"model": name, "frames": frames, "fps": fps, "clips": total, "top1": correct[name] / total}
        for name in names
    ]


def render(rows: list[dict[str, Any]]) -> str:
    kinds = sorted({(r["frames"], r["fps"]) for r in rows}, key=KINDS.index)
    names = list(dict.fromkeys(r["model"] for r in rows))
    top1 = {(r["model"], r["frames"], r["fps"]): r["top1"] for r in rows}
    header = f"{'model':<34}" + "".join(f"{f'{t} @ {fps:g}':>10}" for t, fps in kinds)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = "".join(f"{top1[(name, t, fps)]:>10.1%}" for t, fps in kinds)
        lines.append(f"{name:<34}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="JSON output")
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--models-dir", default=None, help="bundles (default: the shipped ones)")
    parser.add_argument("--models", nargs="*", default=None, help="bundle names (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    catalog = ModelCatalog.load(args.models_dir, args.models or (), "cpu")
    names = args.models or sorted(catalog.names)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            rows += measure(catalog, names, kind, args.clips_per_class, Path(tmp))
            print(f"{kind[0]} frames at {kind[1]:g} fps done", file=sys.stderr, flush=True)
    print(render(rows))
    payload = {
        "command": "vidrec bench clip_lengths " + " ".join(sys.argv[1:] if argv is None else argv),
        "clips_per_class": args.clips_per_class,
        "seed_offset": SEED_OFFSET,
        "machine": machine("machine", "python", "torch", "threads"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
