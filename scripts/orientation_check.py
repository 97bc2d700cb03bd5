"""Can a model learn the actor's orientation from one frame of the synthetic dataset?

The rotation pair needs each frame's orientation first (docs/DATASET.md, "Why the turn is the
hardest pair"), and no shipped bundle's features hold it (``scripts/probe_positions.py``). This
check separates the data from the model: it trains a small model with the orientation as its only
target, sine and cosine of the angle, on single frames of fresh training clips, and reports the
R² on frames of held-out clips (1: read exactly, 0: no better than the mean), for

- ``--models``: ``cnn``, three 3x3 convolutions with pooling and a two-layer head over the
  flattened map (it keeps where things are), or ``vit``, the demo bundles' backbone (ViT-Ti,
  4 blocks, 16-pixel patches, sine-cosine position start) with a linear head on the CLS token;
- ``--views``: ``crop``, a 48-pixel square centred on the actor's true centre (the model need
  not find the actor, and the centre always falls at the same place inside a 16-pixel patch);
  ``shifted``, the same square moved by up to half a patch (8 pixels) each way, so that the
  actor sits anywhere inside its patch, as in a frame; or ``frame``, the whole 112-pixel
  frame, as the bundles see it.

Only frames where the actor is fully visible count. Prints a table and writes JSON.

python scripts/orientation_check.py                            # 2 models x 3 views, 1000 steps
python scripts/orientation_check.py --models vit --views frame --steps 4000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from model_core import create_model
from model_core.config import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, Preprocessing
from model_core.data import HELDOUT_SEEDS, TRAIN_SEEDS, ClipSpec, generate_clip
from model_core.preprocess import preprocess_frames
from model_core.training.init import add_sincos_positions
from model_core.training.targets import STATE_FIELDS, actor_states

CROP = 48  # pixels: an actor's circumradius is at most 0.14 of 112 (16 pixels)
SPEC = ClipSpec(frames=2)  # two frames of every clip: twice the frames for one clip's cost
MODELS = ("cnn", "vit")
VIEWS = ("crop", "shifted", "frame")
SHIFT = 8  # pixels, half a patch: the largest move of the "shifted" crop
TURN = [STATE_FIELDS.index("sin_angle"), STATE_FIELDS.index("cos_angle")]


def _preprocessing(size: int) -> Preprocessing:
    """The bundles' normalisation for a ``size``-pixel input taken whole (no resize, no crop)."""
    return Preprocessing(size, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, crop_pct=1.0)


def frames_and_targets(seeds: Sequence[int], view: str) -> tuple[Tensor, Tensor]:
    """The visible frames of the clips of ``seeds`` and their (sin, cos) of the orientation.

    Returns:
        ``(N, 3, S, S)`` frames normalised as the bundles' input is and ``(N, 2)``.
    """
    images, targets = [], []
    for seed in seeds:
        clip = generate_clip(int(seed), spec=SPEC)
        turn = actor_states(clip.track, _preprocessing(SPEC.size))[:, TURN]  # (T, 2)
        for t, frame in enumerate(clip.frames):
            if clip.track.opacity[t] < 0.99:
                continue
            if view != "frame":
                half = CROP // 2
                pad = half + SHIFT
                padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
                # The actor's centre in the padded frame is (x·size + pad, y·size + pad), so a
                # crop from (cx + SHIFT, cy + SHIFT) has it in the middle.
                cx = int(np.rint(clip.track.x[t] * SPEC.size))
                cy = int(np.rint(clip.track.y[t] * SPEC.size))
                if view == "shifted":  # seeded by the clip, so the check is repeatable
                    dx, dy = np.random.default_rng([int(seed), t]).integers(-SHIFT, SHIFT + 1, 2)
                    cx, cy = cx + int(dx), cy + int(dy)
                frame = padded[cy + SHIFT : cy + SHIFT + CROP, cx + SHIFT : cx + SHIFT + CROP]
            images.append(frame)
            targets.append(turn[t])
    frames = np.stack(images)  # (N, S, S, 3) uint8
    x = preprocess_frames(frames, _preprocessing(frames.shape[1]))
    return x, torch.from_numpy(np.stack(targets)).float()


class ConvRegressor(nn.Module):
    """Three conv-pool stages, then a two-layer head over the flattened map."""

    def __init__(self, size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 32), (32, 64), (64, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        side = size // 8
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class ViTRegressor(nn.Module):
    """The demo bundles' backbone on single frames, a linear head on the final CLS token."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.backbone = create_model(
            "vit_avg_vit_tiny_patch16_224",
            img_size=size,
            depth=4,
            num_frames=1,
            labels=["unused"],
            crop_pct=1.0,
        )
        add_sincos_positions(self.backbone)
        self.head = nn.Linear(self.backbone.config.embed_dim, 2)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.backbone.forward_features(x[:, None])  # (B, 1, N, C)
        return self.head(tokens[:, 0, 0])


@dataclass(frozen=True)
class CheckResult:
    """One model on one view: the final held-out R² (sin, cos) and the curve that led there."""

    model: str
    view: str
    steps: int
    heldout_frames: int
    r2: list[float]
    curve: list[dict[str, object]]
    seconds: float


def r2(model: nn.Module, x: Tensor, y: Tensor) -> list[float]:
    """R² of (sin, cos) on held-out frames."""
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(chunk) for chunk in x.split(256)])
    model.train()
    return [round(float(v), 3) for v in 1 - ((predicted - y) ** 2).mean(0) / y.var(0)]


def run(
    model_kind: str, view: str, steps: int, batch: int, heldout: int, offset: int, seed: int
) -> CheckResult:
    torch.manual_seed(seed)
    size = SPEC.size if view == "frame" else CROP
    model: nn.Module = ConvRegressor(size) if model_kind == "cnn" else ViTRegressor(size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    held_x, held_y = frames_and_targets(HELDOUT_SEEDS[:heldout], view)
    curve: list[dict[str, object]] = []
    last: list[float] = []
    checkpoints = {max(1, steps * k // 4) for k in range(1, 5)}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        first = offset + (step - 1) * batch
        x, y = frames_and_targets(TRAIN_SEEDS[first : first + batch], view)
        loss = ((model(x) - y) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step in checkpoints:
            last = r2(model, held_x, held_y)
            curve.append({"step": step, "r2": last})
            print(f"  {model_kind} on {view}: step {step}, R² {last}", file=sys.stderr)
    seconds = round(time.perf_counter() - start, 1)
    return CheckResult(model_kind, view, steps, len(held_y), last, curve, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16, help="clips (2 frames each)")
    parser.add_argument("--heldout", type=int, default=330, help="held-out clips")
    parser.add_argument("--seed-offset", type=int, default=9_000_000, help="first training seed")
    parser.add_argument("--seed", type=int, default=0, help="weights and order")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.heldout < 1:
        parser.error("--steps, --batch-size and --heldout must be at least 1")
    torch.set_num_threads(args.threads)
    rows = [
        run(m, v, args.steps, args.batch_size, args.heldout, args.seed_offset, args.seed)
        for m in args.models
        for v in args.views
    ]
    print(f"orientation from one frame, {args.steps} steps of {args.batch_size} clips")
    print(f"{'model':<6} {'view':<6} {'R² sin':>7} {'R² cos':>7} {'seconds':>8}")
    for row in rows:
        sin_r2, cos_r2 = row.r2
        print(f"{row.model:<6} {row.view:<6} {sin_r2:7.3f} {cos_r2:7.3f} {row.seconds:8}")
    if args.json is not None:
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
        report = {"machine": machine, "threads": args.threads, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
