"""``vidrec classify``: label local video files in-process, without a server.

The same path as the service's workers: ``decode_clip`` (with the ingest limits) samples each
file for the model, ``ClipClassifier`` runs the model's own preprocessing and a batched forward.
A file that cannot be read is reported on its own and makes the exit status 1; the other files
are still answered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from service.inference import ClipAnswer, ClipClassifier, ModelCatalog, pick_default, read_configs
from service.ingest import ClipLimits, DecodedClip, IngestError, Sampling, decode_clip

# Files decoded and classified together: one forward per group keeps memory bounded.
GROUP = 8


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify local video files in-process",
        description="Classify local video files with a model bundle, in this process.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="video files (MP4, MKV, ...)")
    parser.add_argument("--model", help="bundle name (default: the clip default of the dir)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=os.environ.get("VIDREC_MODELS_DIR") or None,  # argparse applies type=Path
        help="directory of bundles (default: VIDREC_MODELS_DIR or the shipped demo ones)",
    )
    parser.add_argument("--top-k", type=int, default=5, help="labels per file (default: 5)")
    parser.add_argument("--clips", type=int, default=1, help="temporal views per file")
    parser.add_argument(
        "--crops", type=int, default=1, choices=(1, 3), help="spatial views per clip"
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="the models' floating type (default auto: bfloat16 on CUDA GPUs with native "
        "bfloat16, else float32), as VIDREC_DTYPE for workers",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class FileResult:
    """One file's answer, or why it has none."""

    path: str
    decoded: DecodedClip | None = None
    answer: ClipAnswer | None = None
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None or self.answer is None or self.decoded is None:
            return {"file": self.path, "error": self.error}
        clip, info = self.decoded, self.decoded.info
        body = self.answer.to_dict()
        return {
            "file": self.path,
            "model": body["model"],
            "labels": body["labels"],
            "timing_ms": {
                "decode": clip.decode_seconds * 1000.0,
                "inference": self.answer.inference_ms,
            },
            "compute": {"gmacs": self.answer.gmacs, "frames": self.answer.frames},
            "sampled": {
                "views": self.answer.views,
                "frame_indices": clip.frame_indices.tolist(),
                "timestamps_s": [[round(t, 4) for t in row] for row in clip.timestamps_s.tolist()],
            },
            "clip": {
                "width": info.width,
                "height": info.height,
                "frames": info.num_frames,
                "duration_s": info.duration_s,
                "fps": info.avg_fps,
                "codec": info.codec,
            },
        }


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.clips < 1:
        raise ValueError(f"--clips must be at least 1, got {args.clips}")
    name = args.model or pick_default(read_configs(args.models_dir), "clip")
    catalog = ModelCatalog.load(
        args.models_dir, [name] if name else (), args.device, dtype=args.dtype
    )
    entry = catalog.resolve(name)
    classifier = ClipClassifier(catalog)
    sampling = Sampling(num_frames=entry.frames, num_clips=args.clips, num_crops=args.crops)
    short_side = entry.config.preprocessing.resize_size

    results: list[FileResult] = []
    for first in range(0, len(args.files), GROUP):
        group: list[FileResult] = []
        for path in args.files[first : first + GROUP]:
            group.append(_decode(path, sampling, short_side))
        answers = iter(
            classifier.classify(
                entry.name, [r.decoded.views for r in group if r.decoded is not None], args.top_k
            )
        )
        results += [replace(r, answer=next(answers)) if r.decoded is not None else r for r in group]

    for result in results:
        if result.error is not None:
            print(f"vidrec classify: {result.path}: {result.error['message']}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 1 if any(r.error is not None for r in results) else 0


def _decode(path: str, sampling: Sampling, short_side: int) -> FileResult:
    try:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no file at {path}")
        clip = decode_clip(path, sampling, ClipLimits(), short_side=short_side)
    except IngestError as err:
        return FileResult(path, error={"code": err.code, "message": err.message})
    except OSError as err:
        message = str(err) if isinstance(err, FileNotFoundError) else f"cannot read: {err}"
        return FileResult(path, error={"code": "unreadable", "message": message})
    return FileResult(path, decoded=clip)


def format_table(results: list[FileResult]) -> str:
    header = ("file", "label", "score", "decode ms", "infer ms", "GMACs")
    body = []
    for r in results:
        if r.answer is None or r.decoded is None:
            code = r.error["code"] if r.error else "error"
            body.append((r.path, f"(error: {code})", "", "", "", ""))
            continue
        label, score = r.answer.labels[0]
        body.append(
            (
                r.path,
                label,
                f"{score:.3f}",
                f"{r.decoded.decode_seconds * 1000.0:.1f}",
                f"{r.answer.inference_ms:.1f}",
                f"{r.answer.gmacs:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in body
    ]
    return "\n".join(lines)
