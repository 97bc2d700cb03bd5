"""``vidrec eval``: score a bundle on freshly generated held-out clips."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from model_core import ModelConfig, load_bundle
from model_core.checkpoint import read_bundle_config
from model_core.data import SCENES, ClipSpec
from model_core.training import EvalReport, evaluate, resolve_device


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a bundle on held-out generated clips",
        description=(
            "Score a bundle on clips generated from HELDOUT_SEEDS (disjoint from training): "
            "top-1, per-class accuracy, and the confusion within each order-dependent pair."
        ),
    )
    parser.add_argument("bundle", help="a bundle written by `vidrec train`")
    parser.add_argument(
        "--clips", type=int, default=220, help="held-out clips (a multiple of 11 is balanced)"
    )
    parser.add_argument(
        "--seed-offset", type=int, default=0, help="index in HELDOUT_SEEDS of the first clip"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=None, help="default: as trained")
    parser.add_argument("--img-size", type=int, default=None, help="default: as trained")
    parser.add_argument("--fps", type=float, default=None, help="default: as trained")
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="clip-making processes (0: one background thread)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--scene",
        choices=SCENES,
        default="classic",
        help="scenes to score on (the held-out clips are classic, whatever the bundle trained on)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def clip_spec(
    args: argparse.Namespace, training: dict[str, Any] | None, config: ModelConfig
) -> ClipSpec:
    """The clips to score on: those the bundle was trained on (else the model's frame count and
    image size at the default frame rate), with the arguments' overrides."""
    fields: dict[str, Any] = {"frames": config.num_frames, "size": config.img_size}
    dataset = (training or {}).get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("spec"), dict):
        # JSON turned the spec's tuples into lists.
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in dataset["spec"].items()}
    overrides = {"frames": args.frames, "size": args.img_size, "fps": args.fps, "scene": args.scene}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ClipSpec(**fields)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if not Path(args.bundle).is_file():
        raise ValueError(f"no bundle file at {args.bundle}")
    config, training = read_bundle_config(args.bundle)
    model = load_bundle(args.bundle, map_location=device)
    spec = clip_spec(args, training, config)
    report = evaluate(
        model,
        args.clips,
        offset=args.seed_offset,
        spec=spec,
        batch_size=args.batch_size,
        device=device,
        workers=args.workers,
        amp=device.type == "cuda",
    )
    if args.json:
        out = {"bundle": str(args.bundle), "model": config.name, "family": config.family}
        print(json.dumps({**out, **_finite(report.to_dict())}, indent=2, allow_nan=False))
        return 0
    print(format_report(report, f"{args.bundle} ({config.name}, {config.family})"))
    return 0


def _finite(value: Any) -> Any:
    """NaN (a rate over no clips) becomes null, so the output is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


def format_report(report: EvalReport, title: str) -> str:
    """The report as text: summary, per-class table, pair confusion, confusion matrix."""
    spec = report.spec
    lines = [title]
    if report.seeds is not None and spec is not None:
        lines.append(
            f"{report.clips} held-out clips (seeds {report.seeds[0]}..{report.seeds[1] - 1}), "
            f"{spec.frames} frames of {spec.size} px at {spec.fps:g} fps"
        )
    lines += [f"top-1 {_percent(report.top1)} ({report.correct}/{report.clips})", ""]
    lines += _table(
        ("class", "clips", "correct", "top-1"),
        [(c.name, str(c.total), str(c.correct), _percent(c.accuracy)) for c in report.classes],
    )
    lines += ["", "order-dependent pairs (A / B; A→B: clips of A called B)"]
    lines += _table(
        ("pair", "A→A", "A→B", "B→A", "B→B", "other", "top-1", "swapped"),
        [
            (
                f"{p.first} / {p.second}",
                str(p.first_as_first),
                str(p.first_as_second),
                str(p.second_as_first),
                str(p.second_as_second),
                str(p.other),
                _percent(p.accuracy),
                _percent(p.swap_rate),
            )
            for p in report.pairs
        ],
    )
    lines += ["", "confusion matrix (rows: true class, columns: predicted, in class order)"]
    lines += _table(
        ("", *(str(i) for i in range(len(report.labels)))),
        [
            (f"{i} {name}", *(str(v) for v in row))
            for i, (name, row) in enumerate(zip(report.labels, report.confusion, strict=True))
        ],
    )
    return "\n".join(lines)
