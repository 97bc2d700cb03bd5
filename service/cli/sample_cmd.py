"""``vidrec sample [FILE]``: write a sample video from the synthetic action generator.

No clip ships with vidrec; this writes one the demo models know: a clip of one action (the
generator's defaults, the shape the demo bundles were trained on: 8 frames of 112 px at 10 fps),
or with ``--stream N`` a longer video of N actions in a row for ``vidrec client stream``. The
seeds are held-out ones (never seen in training). The container follows the suffix (``.mp4``...).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path("clip.mp4")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="write a sample clip from the synthetic action generator",
        description=(
            "Write a sample video from vidrec's synthetic action generator: one action (a clip "
            "for `vidrec client clip`), or --stream N actions in a row (for `vidrec client "
            "stream`). Held-out seeds; the same arguments write the same file."
        ),
    )
    parser.add_argument(
        "file", nargs="?", type=Path, default=DEFAULT_FILE, help="output file (default clip.mp4)"
    )
    parser.add_argument("--action", help="the action to show (default: the seed's own)")
    parser.add_argument("--seed", type=int, default=0, help="which sample (default 0)")
    parser.add_argument(
        "--stream", type=int, metavar="N", help="write N actions in a row instead of one clip"
    )
    parser.add_argument("--frames", type=int, default=8, help="frames of a clip (default 8)")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels (default 112)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate (default 10)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The generator and the encoder are imported here, not at start-up (see service/cli/__init__).
    from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, ClipSpec, generate_clip, generate_stream
    from model_core.data.video_io import write_video

    if args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    if args.frames < 2 or args.size < 16 or not args.fps > 0:
        raise ValueError("--frames must be at least 2, --size at least 16 and --fps positive")
    label = None
    if args.action is not None:
        if args.action not in CLASS_NAMES:
            raise ValueError(f"unknown action {args.action!r}; known: {', '.join(CLASS_NAMES)}")
        label = CLASS_NAMES.index(args.action)
    spec = ClipSpec(frames=args.frames, size=args.size, fps=args.fps)
    seed = HELDOUT_SEEDS[args.seed % len(HELDOUT_SEEDS)]
    args.file.parent.mkdir(parents=True, exist_ok=True)
    if args.stream is not None:
        if args.stream < 1:
            raise ValueError(f"--stream must be at least 1, got {args.stream}")
        if label is not None:
            raise ValueError("--action picks the action of a clip; a --stream draws its own")
        stream = generate_stream(seed, num_actions=args.stream, spec=spec)
        write_video(args.file, stream)
        actions = ", ".join(CLASS_NAMES[s.action.label] for s in stream.segments)
        what = f"{len(stream.frames)} frames, actions {actions}"
    else:
        clip = generate_clip(seed, label=label, spec=spec)
        write_video(args.file, clip)
        what = f"{len(clip.frames)} frames, action {CLASS_NAMES[clip.label]}"
    print(f"wrote {args.file}: {what} ({args.size}x{args.size} at {args.fps:g} fps)")
    return 0
