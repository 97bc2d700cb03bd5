"""Can a model learn the actor's orientation from one frame of the synthetic dataset?

The rotation pair needs each frame's orientation first (research/NOTES.md, "Why the turn is the
hardest pair"), and no shipped bundle's features hold it (``research/probe_positions.py``). This
check separates the data from the model: it trains a small model with the orientation as its only
target, sine and cosine of the angle, on single frames of fresh training clips, and reports the
R² on frames of held-out clips (1: read exactly, 0: no better than the mean), for

- ``--models``: ``cnn``, three 3x3 convolutions with pooling and a two-layer head over the
  flattened map (it keeps where things are), or ``vit``, the demo bundles' backbone (ViT-Ti,
  4 blocks, 16-pixel patches, sine-cosine position start) with a linear head on the CLS token
  or, ``--readout patch``, on the token of the patch that holds the actor's centre;
- ``--views``: ``crop``, a 48-pixel square centred on the actor's true centre (the model need
  not find the actor, and the centre always falls at the same place inside a 16-pixel patch);
  ``shifted``, the same square moved by up to half a patch (8 pixels) each way, so that the
  actor sits anywhere inside its patch, as in a frame; or ``frame``, the whole 112-pixel
  frame, as the bundles see it.

Only frames where the actor is fully visible count. Every model is trained as ``vidrec train``
trains (AdamW, warm-up and cosine, gradient clipping; ``--lr``). ``--shift-ramp F`` grows the
shifted view's largest shift from 0 to its full 8 pixels over the first share ``F`` of the steps,
a curriculum from the centred crop (several values, or several ``--readout``: one run each).
``--chain`` trains one ViT through the views in the order given, each from the weights the one
before it ended with. Prints a table and writes JSON.

python recipes/orientation_check.py                            # 2 models x 3 views, 1000 steps
python recipes/orientation_check.py --models vit --views frame --steps 4000 --json out.json
python recipes/orientation_check.py --models vit --views shifted --shift-ramp 0 0.5
python recipes/orientation_check.py --models vit --views shifted frame --readout patch \
    --shift-ramp 0.5 --chain --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from model_core import create_model
from model_core.checkpoint import save_weights
from model_core.config import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, Preprocessing
from model_core.data import HELDOUT_SEEDS, TRAIN_SEEDS, ClipSpec, generate_clip
from model_core.preprocess import preprocess_frames
from model_core.training import TrainConfig, cosine_with_warmup, param_groups
from model_core.training.init import add_sincos_positions
from model_core.training.targets import STATE_FIELDS, actor_states

CROP = 48  # pixels: an actor's circumradius is at most 0.14 of 112 (16 pixels)
SPEC = ClipSpec(frames=2)  # two frames of every clip: twice the frames for one clip's cost
MODELS = ("cnn", "vit")
VIEWS = ("crop", "shifted", "frame")
READOUTS = ("cls", "patch")
PATCH = 16  # pixels: the bundles' patch side
SHIFT = PATCH // 2  # pixels, half a patch: the largest move of the "shifted" crop
TURN = [STATE_FIELDS.index("sin_angle"), STATE_FIELDS.index("cos_angle")]


def _preprocessing(size: int) -> Preprocessing:
    """The bundles' normalisation for a ``size``-pixel input taken whole (no resize, no crop)."""
    return Preprocessing(size, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD, crop_pct=1.0)


class Frames(NamedTuple):
    """Single frames of one view with their targets."""

    images: Tensor  # (N, 3, S, S), normalised as the bundles' input is
    turn: Tensor  # (N, 2): sine and cosine of the actor's orientation
    patch: Tensor  # (N,): raster index of the 16-pixel patch that holds the actor's centre


def frames_and_targets(seeds: Sequence[int], view: str, shift: int = SHIFT) -> Frames:
    """The visible frames of the clips of ``seeds`` in ``view`` and their targets; a
    ``shifted`` crop moves by up to ``shift`` pixels each way."""
    images, targets, patches = [], [], []
    for seed in seeds:
        clip = generate_clip(int(seed), spec=SPEC)
        turn = actor_states(clip.track, _preprocessing(SPEC.size))[:, TURN]  # (T, 2)
        for t, frame in enumerate(clip.frames):
            if clip.track.opacity[t] < 0.99:
                continue
            # The actor's centre in the view, in pixels; the view's top-left moves it below.
            ax, ay = clip.track.x[t] * SPEC.size, clip.track.y[t] * SPEC.size
            if view != "frame":
                half = CROP // 2
                pad = half + SHIFT
                padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
                # The actor's centre in the padded frame is (x·size + pad, y·size + pad), so a
                # crop from (cx + SHIFT, cy + SHIFT) has it in the middle.
                cx, cy = int(np.rint(ax)), int(np.rint(ay))
                if view == "shifted":  # seeded by the clip, so the check is repeatable
                    dx, dy = np.random.default_rng([int(seed), t]).integers(-shift, shift + 1, 2)
                    cx, cy = cx + int(dx), cy + int(dy)
                frame = padded[cy + SHIFT : cy + SHIFT + CROP, cx + SHIFT : cx + SHIFT + CROP]
                ax, ay = ax - (cx - half), ay - (cy - half)
            grid = frame.shape[0] // PATCH
            column, row = (min(grid - 1, max(0, int(v // PATCH))) for v in (ax, ay))
            images.append(frame)
            targets.append(turn[t])
            patches.append(row * grid + column)
    frames = np.stack(images)  # (N, S, S, 3) uint8
    return Frames(
        preprocess_frames(frames, _preprocessing(frames.shape[1])),
        torch.from_numpy(np.stack(targets)).float(),
        torch.tensor(patches),
    )


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

    def forward(self, x: Tensor, patch: Tensor) -> Tensor:
        return self.head(self.features(x))  # reads the whole map: ``patch`` is not needed


class ViTRegressor(nn.Module):
    """The demo bundles' backbone on single frames, a linear head on one final token: the CLS
    (``readout="cls"``), or the token of the patch that holds the actor's centre (``"patch"``),
    which gives the same computation at every place the actor can be."""

    def __init__(self, size: int, readout: str = "cls") -> None:
        super().__init__()
        self.readout = readout
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

    def forward(self, x: Tensor, patch: Tensor) -> Tensor:
        tokens = self.backbone.forward_features(x[:, None])[:, 0]  # (B, 1 + patches, C)
        if self.readout == "cls":
            return self.head(tokens[:, 0])
        return self.head(tokens[torch.arange(len(patch)), 1 + patch])


@dataclass(frozen=True)
class Settings:
    """How every model is trained and scored.

    Attributes:
        steps: Optimiser steps.
        batch: Clips per step (two frames each).
        heldout: Held-out clips scored.
        offset: Index in ``TRAIN_SEEDS`` of the first training clip.
        seed: Seeds the weights.
        lr: Peak learning rate.
        readout: The ViT's token read by the head, ``cls`` or ``patch`` (``ViTRegressor``).
        shift_ramp: For the ``shifted`` view, the share of the steps over which the largest
            shift of the training crops grows from 0 to ``SHIFT`` pixels (0: all of it from the
            start); the held-out crops always move by up to ``SHIFT``.
    """

    steps: int = 1000
    batch: int = 16
    heldout: int = 330
    offset: int = 9_000_000
    seed: int = 0
    lr: float = 3e-4
    readout: str = "cls"
    shift_ramp: float = 0.0

    def shift_at(self, step: int) -> int:
        """The largest shift of the training crops at ``step`` (1-based)."""
        if self.shift_ramp <= 0:
            return SHIFT
        return min(SHIFT, int(SHIFT * step / (self.shift_ramp * self.steps)))


@dataclass(frozen=True)
class CheckResult:
    """One model on one view: the final held-out R² (sin, cos) and the curve that led there."""

    model: str
    view: str
    readout: str
    steps: int
    shift_ramp: float
    heldout_frames: int
    r2: list[float]
    curve: list[dict[str, object]]
    seconds: float
    started_from: str = ""  # the run whose final weights this one started from ("": scratch)
    weights: dict[str, Tensor] | None = field(default=None, repr=False, compare=False)

    def label(self) -> str:
        """The view, and the shift's ramp if it had one."""
        return self.view + (f", ramp {self.shift_ramp:g}" if self.shift_ramp else "")

    def report(self) -> dict[str, object]:
        """Everything but the weights, for the JSON."""
        return {k: v for k, v in asdict(self).items() if k != "weights"}


def r2(model: nn.Module, held: Frames) -> list[float]:
    """R² of (sin, cos) on held-out frames."""
    model.eval()
    with torch.no_grad():
        chunks = zip(held.images.split(256), held.patch.split(256), strict=True)
        predicted = torch.cat([model(x, patch) for x, patch in chunks])
    model.train()
    y = held.turn
    return [round(float(v), 3) for v in 1 - ((predicted - y) ** 2).mean(0) / y.var(0)]


def run(
    model_kind: str, view: str, settings: Settings, start: CheckResult | None = None
) -> CheckResult:
    """Trains one model on one view and scores it; from the weights another ViT ended ``start``
    with, if given (all but the position embedding, whose grid depends on the view's size)."""
    torch.manual_seed(settings.seed)
    size = SPEC.size if view == "frame" else CROP
    model: nn.Module = (
        ConvRegressor(size) if model_kind == "cnn" else ViTRegressor(size, settings.readout)
    )
    if start is not None:
        assert start.weights is not None and model_kind == start.model == "vit"
        weights = {k: v for k, v in start.weights.items() if not k.endswith("pos_embed")}
        model.load_state_dict(weights, strict=False)
    # The optimisation `vidrec train` uses, taken from its defaults (AdamW without decay on norms
    # and embeddings, linear warm-up, cosine, gradient clipping): without the warm-up and the
    # clipping, at 1e-3, the ViT stayed near R² 0 even on the centred crop.
    training = TrainConfig(
        clips=settings.steps * settings.batch, batch_size=settings.batch, lr=settings.lr
    )
    optimiser = torch.optim.AdamW(param_groups(model, training.weight_decay), lr=training.lr)
    steps = training.total_steps
    schedule = cosine_with_warmup(
        optimiser, steps, training.warmup_steps, min_ratio=training.min_lr_ratio
    )
    held = frames_and_targets(HELDOUT_SEEDS[: settings.heldout], view)
    curve: list[dict[str, object]] = []
    last: list[float] = []
    checkpoints = {max(1, steps * k // 4) for k in range(1, 5)}
    began = time.perf_counter()
    for step in range(1, steps + 1):
        first = settings.offset + (step - 1) * settings.batch
        seeds = TRAIN_SEEDS[first : first + settings.batch]
        x, y, patch = frames_and_targets(seeds, view, settings.shift_at(step))
        loss = ((model(x, patch) - y) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        if training.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
        optimiser.step()
        schedule.step()
        if step in checkpoints:
            last = r2(model, held)
            curve.append({"step": step, "r2": last})
            print(f"  {model_kind} on {view}: step {step}, R² {last}", file=sys.stderr)
    seconds = round(time.perf_counter() - began, 1)
    ramp = settings.shift_ramp if view == "shifted" else 0.0
    readout = settings.readout if model_kind == "vit" else "map"
    return CheckResult(
        model_kind,
        view,
        readout,
        steps,
        ramp,
        len(held.turn),
        last,
        curve,
        seconds,
        started_from=start.label() if start is not None else "",
        weights=model.state_dict(),
    )


def save_backbone(result: CheckResult, path: Path, command: str) -> None:
    """Writes the backbone of a ViT run (``ViTRegressor.backbone``, without the orientation head
    and the unused classifier) as plain weights that record ``command`` and the run's R²;
    ``load_checkpoint(strict=False)`` loads its blocks into any demo family, and a bundle trained
    ``--init`` from it keeps the record."""
    assert result.weights is not None and result.model == "vit"
    prefix = "backbone."
    state = {
        key.removeprefix(prefix): tensor
        for key, tensor in result.weights.items()
        if key.startswith(prefix) and not key.startswith(prefix + "head.")
    }
    save_weights(state, path, {"command": command, "orientation": result.report()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS))
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--batch-size", type=int, default=Settings.batch, help="clips (2 frames)")
    parser.add_argument("--heldout", type=int, default=Settings.heldout, help="held-out clips")
    parser.add_argument("--seed-offset", type=int, default=Settings.offset, help="first seed")
    parser.add_argument("--lr", type=float, default=Settings.lr, help="peak learning rate")
    parser.add_argument(
        "--shift-ramp",
        type=float,
        nargs="+",
        default=[Settings.shift_ramp],
        help="shares of the steps over which the shifted view's largest shift grows from 0 "
        "(one run of the shifted view per value)",
    )
    parser.add_argument(
        "--readout",
        nargs="+",
        choices=READOUTS,
        default=[Settings.readout],
        help="the ViT's token read by the head: cls, or the patch under the actor's centre "
        "(one ViT run per value)",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="ViT only: train the views in the order given, each from the weights the one "
        "before it ended with (a curriculum: crop, shifted, frame)",
    )
    parser.add_argument("--seed", type=int, default=Settings.seed, help="weights and order")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        help="write the last ViT's backbone (no head) here as a .safetensors state dict, a "
        "start for `vidrec train --init`",
    )
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(raw_argv)
    if args.steps < 1 or args.batch_size < 1 or args.heldout < 1:
        parser.error("--steps, --batch-size and --heldout must be at least 1")
    if not args.lr > 0:
        parser.error("--lr must be positive")
    if not all(0 <= ramp <= 1 for ramp in args.shift_ramp):
        parser.error("--shift-ramp must be within [0, 1]")
    if args.save is not None and "vit" not in args.models:
        parser.error("--save writes a ViT's weights: add vit to --models")
    if args.chain and (args.models != ["vit"] or len(args.readout) > 1 or len(args.shift_ramp) > 1):
        parser.error("--chain trains one ViT: --models vit, one --readout, one --shift-ramp")
    torch.set_num_threads(args.threads)
    settings = Settings(
        args.steps, args.batch_size, args.heldout, args.seed_offset, args.seed, args.lr
    )
    rows: list[CheckResult] = []
    if args.chain:
        chained = replace(settings, readout=args.readout[0], shift_ramp=args.shift_ramp[0])
        for v in args.views:
            rows.append(run("vit", v, chained, start=rows[-1] if rows else None))
    else:
        rows = [
            run(m, v, replace(settings, readout=readout, shift_ramp=ramp))
            for m in args.models
            for v in args.views
            for readout in (args.readout if m == "vit" else ["cls"])
            for ramp in (args.shift_ramp if v == "shifted" else [0.0])
        ]
    print(
        f"orientation from one frame, {args.steps} steps of {args.batch_size} clips, lr {args.lr}"
    )
    print(f"{'model':<6} {'view':<34} {'readout':<8} {'R² sin':>7} {'R² cos':>7} {'seconds':>8}")
    for row in rows:
        sin_r2, cos_r2 = row.r2
        view = row.label() + (f" (from {row.started_from})" if row.started_from else "")
        print(
            f"{row.model:<6} {view:<34} {row.readout:<8} {sin_r2:7.3f} {cos_r2:7.3f} "
            f"{row.seconds:8}"
        )
    if args.json is not None:
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
        report = {
            "machine": machine,
            "threads": args.threads,
            "lr": args.lr,
            "chain": args.chain,
            "rows": [r.report() for r in rows],
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.save is not None:
        last_vit = [row for row in rows if row.model == "vit"][-1]
        command = shlex.join(["python", "recipes/orientation_check.py", *raw_argv])
        save_backbone(last_vit, args.save, command)
        print(f"wrote the {last_vit.label()} ViT's backbone to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
