"""``vidrec models``: the registered models with their parameters and compute."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from model_core import create_model, list_models
from model_core.flops import count_flops
from model_core.models import FAMILIES


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list registered models with parameters and GMACs",
        description="List registered models with parameters and GMACs per clip.",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*_base_*'")
    parser.add_argument("--family", choices=sorted(FAMILIES), help="only this family")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: 8)")
    parser.add_argument("--img-size", type=int, default=None, help="frame side in pixels")
    parser.add_argument("--num-classes", type=int, default=400, help="classifier width")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def describe(name: str, frames: int | None, img_size: int | None, num_classes: int) -> dict:
    """Parameters and MACs of one model, built on the meta device (no weights allocated)."""
    overrides: dict[str, Any] = {"num_classes": num_classes}
    if frames:
        overrides["num_frames"] = frames
    if img_size:
        overrides["img_size"] = img_size
    with torch.device("meta"):
        model = create_model(name, **overrides)
    flops = count_flops(model)
    cfg = model.config
    return {
        "name": name,
        "family": cfg.family,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "frames": cfg.num_frames,
        "img_size": cfg.img_size,
        "gmacs_per_clip": round(flops.gmacs, 3),
        "gmacs_per_frame": round(flops.gmacs_per_frame, 3),
        "causal_variant": model.family.supports_causal,
    }


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, family=args.family)
    if not names:
        raise ValueError(f"no registered model matches {args.pattern!r}")
    rows = [describe(n, args.frames, args.img_size, args.num_classes) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    header = ("model", "family", "params (M)", "frames", "size", "GMACs/clip", "GMACs/frame")
    body = [
        (
            r["name"],
            r["family"],
            f"{r['params_m']:.2f}",
            str(r["frames"]),
            str(r["img_size"]),
            f"{r['gmacs_per_clip']:.2f}",
            f"{r['gmacs_per_frame']:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)
