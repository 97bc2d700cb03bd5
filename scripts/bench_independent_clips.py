"""Top-1 of the demo bundles on clips drawn by the independent renderer of the tests
(tests/model_core/zoo/independent_renderer.py), with 95% Wilson intervals.

Each clip is rendered, encoded as H.264 MP4 with PyAV, read back with
``model_core.data.video_io.read_video`` and preprocessed with the model's own plan, the path the
CLI and the worker use; every bundle labels the same decoded frames. Prints a table and writes
JSON that ``scripts/render_model_docs.py`` renders into docs/MODELS.md. Usage::

    python scripts/bench_independent_clips.py [docs/independent_clips_bench.json]
        [--clips-per-class 20] [--seed-offset 0] [--models-dir DIR] [--models NAME ...]
        [--before-dir DIR]

``--before-dir`` scores the bundles of the same names in another directory (earlier weights) on
the same clips, and each row records their figures under ``before``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from model_core import load_bundle
from model_core.data import CLASS_NAMES, NUM_CLASSES
from model_core.preprocess import preprocess_frames
from model_core.zoo import list_bundles

ROOT = Path(__file__).resolve().parents[1]
RENDERER = ROOT / "tests" / "model_core" / "zoo" / "independent_renderer.py"
DEFAULT_OUT = ROOT / "docs" / "independent_clips_bench.json"
Z95 = 1.959964


def load_renderer() -> ModuleType:
    """The tests' renderer, loaded from its file (the tests are not a package)."""
    spec = importlib.util.spec_from_file_location("independent_renderer", RENDERER)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {RENDERER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(
    paths: dict[str, Path], per_class: int, seed_offset: int, batch: int = 22
) -> list[dict[str, Any]]:
    """Score every bundle on ``per_class`` clips of each class from ``seed_offset`` on."""
    renderer = load_renderer()
    models = {name: load_bundle(path).eval() for name, path in paths.items()}
    total = per_class * NUM_CLASSES
    correct = dict.fromkeys(models, 0)
    per_class_ok: dict[str, Counter[str]] = {name: Counter() for name in models}
    mistakes: dict[str, Counter[str]] = {name: Counter() for name in models}
    by_background: dict[str, Counter[str]] = {name: Counter() for name in models}
    backgrounds: Counter[str] = Counter()
    for start in range(0, total, batch):
        seeds = range(seed_offset + start, seed_offset + min(start + batch, total))
        clips = [renderer.render_clip(s) for s in seeds]
        decoded = [renderer.decode_mp4(renderer.encode_mp4(c)) for c in clips]
        backgrounds.update(c.background for c in clips)
        for name, model in models.items():
            pre = model.config.preprocessing
            x = torch.stack([preprocess_frames(d, pre) for d in decoded])  # (B, T, 3, S, S)
            with torch.no_grad():
                answers = model(x).argmax(-1).tolist()
            for clip, answer in zip(clips, answers, strict=True):
                if answer == clip.label:
                    correct[name] += 1
                    per_class_ok[name][clip.name] += 1
                    by_background[name][clip.background] += 1
                else:
                    mistakes[name][f"{clip.name}->{CLASS_NAMES[answer]}"] += 1
        print(f"{start + len(seeds)}/{total} clips", file=sys.stderr, flush=True)
    rows = []
    for name in models:
        low, high = wilson(correct[name], total)
        rows.append(
            {
                "model": name,
                "clips": total,
                "correct": correct[name],
                "top1": correct[name] / total,
                "ci95": [low, high],
                "per_class": {c: per_class_ok[name][c] / per_class for c in CLASS_NAMES},
                "per_background": {
                    b: by_background[name][b] / n for b, n in sorted(backgrounds.items())
                },
                "mistakes": dict(mistakes[name].most_common(5)),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'model':<34}{'top1':>8}{'95% CI':>18}  worst mistakes"]
    for r in rows:
        low, high = r["ci95"]
        worst = ", ".join(f"{k} x{v}" for k, v in list(r["mistakes"].items())[:3])
        lines.append(f"{r['model']:<34}{r['top1']:>8.1%}{f'{low:.1%}-{high:.1%}':>18}  {worst}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="JSON output")
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--models-dir", default=None, help="bundles (default: the shipped ones)")
    parser.add_argument("--models", nargs="*", default=None, help="bundle names (default: all)")
    parser.add_argument(
        "--before-dir", default=None, help="earlier bundles of the same names, on the same clips"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = list_bundles(args.models_dir)
    if args.models:
        paths = {name: paths[name] for name in args.models}
    before: dict[str, Path] = {}
    if args.before_dir:
        earlier = list_bundles(args.before_dir)
        before = {  # (a bundle whose file is unchanged has no earlier weights)
            f"before:{name}": earlier[name]
            for name in paths
            if name in earlier and earlier[name].read_bytes() != paths[name].read_bytes()
        }
    measured = measure({**paths, **before}, args.clips_per_class, args.seed_offset)
    earlier_rows = {r["model"].removeprefix("before:"): r for r in measured if r["model"] in before}
    rows = [r for r in measured if r["model"] not in before]
    for row in rows:
        if (old := earlier_rows.get(row["model"])) is not None:
            row["before"] = {k: old[k] for k in ("correct", "top1", "ci95")}
    print(render(measured))
    argv_used = sys.argv[1:] if argv is None else argv
    payload = {
        "command": "python scripts/bench_independent_clips.py " + " ".join(argv_used),
        "clips_per_class": args.clips_per_class,
        "seed_offset": args.seed_offset,
        "machine": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
