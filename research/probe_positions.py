"""How well a bundle's features say *where* things are: linear probes on held-out clips.

Fits ridge regressions on half of the frames of generated held-out clips and reports R² on the
other half (1: perfectly decodable, 0: no better than the mean, below 0: worse) for

- ``patch_position``: each final patch token to its own column and row in the patch grid;
- ``actor_centre``: each frame's final CLS token to the actor's centre x and y;
- ``actor_turn``: the CLS token to the sine and cosine of the actor's orientation;
- ``actor_patch_turn``: the same from the final token of the patch under the actor's centre, on
  the frames where the actor is fully visible: whether the orientation is anywhere in the
  features, even where the CLS does not gather it;
- ``actor_outline``: the CLS token to the sine and cosine of ``k`` times the orientation, where
  ``k`` is the symmetry order of the actor's outline (4 for a square), on the frames of the
  polygon actors: what the outline alone shows, without the marker disc.

A model that must tell move_left from move_right through its CLS tokens needs the second; the
first is what it can build that from. research/NOTES.md, "Position", quotes this script.

python research/probe_positions.py model_core/zoo/bundles/tokshift_tiny_motion112.safetensors
python research/probe_positions.py BUNDLE --clips 330 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from model_core import load_bundle
from model_core.data import HELDOUT_SEEDS, ClipSpec, generate_clip
from model_core.data.shapes import get_shape
from model_core.training import preprocess_batch
from model_core.training.targets import POSITION_SCALE, STATE_FIELDS, actor_states

RIDGE = 10.0
BATCH = 22
# Columns of ``actor_states``, by name rather than by position.
CENTRE = [STATE_FIELDS.index("x"), STATE_FIELDS.index("y")]
SIN, COS = STATE_FIELDS.index("sin_angle"), STATE_FIELDS.index("cos_angle")
OPACITY = STATE_FIELDS.index("opacity")


def held_out_r2(features: Tensor, targets: Tensor, ridge: float = RIDGE) -> list[float]:
    """R² per target column of a ridge fit on the first half of the rows, on the second half."""
    x = torch.cat([features.double(), features.new_ones(len(features), 1).double()], dim=1)
    y = targets.double()
    half = len(x) // 2
    gram = x[:half].T @ x[:half] + ridge * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(gram, x[:half].T @ y[:half])
    error = ((x[half:] @ weights - y[half:]) ** 2).mean(0)
    return [round(float(v), 3) for v in 1 - error / y[half:].var(0)]


def probe(path: Path, clips: int) -> dict[str, list[float]]:
    model = load_bundle(path)
    config = model.config
    spec = ClipSpec(frames=config.num_frames, size=config.img_size)
    tokens, states, orders = [], [], []
    with torch.no_grad():
        for start in range(0, clips, BATCH):
            batch = [generate_clip(int(s), spec=spec) for s in HELDOUT_SEEDS[start : start + BATCH]]
            x = preprocess_batch(np.stack([c.frames for c in batch]), config.preprocessing)
            tokens.append(model.forward_features(x))  # (B, T, N, C)
            orders += [get_shape(c.actor.shape).symmetry_order for c in batch]
            states.append(
                torch.from_numpy(
                    np.stack([actor_states(c.track, config.preprocessing) for c in batch])
                )
            )
    final = torch.cat(tokens).flatten(0, 1)  # (clips·T, N, C)
    state = torch.cat(states).flatten(0, 1)  # (clips·T, 6)
    grid = model.patch_embed.grid_size
    cells = torch.arange(grid * grid)
    own = torch.stack([cells % grid, cells // grid], dim=-1).float()  # (P, 2): column, row
    # One frame's patches per clip keep the patch fit to a few thousand rows.
    patches = final[:: config.num_frames, 1:]  # (clips, P, C)
    order = torch.tensor(orders, dtype=torch.float64).repeat_interleave(config.num_frames)
    polygon = order > 0  # a circle's outline has no orientation
    # The patch under the actor's centre: the scaled state back to fractions of the model's input.
    centre = (state[:, CENTRE] / POSITION_SCALE + 0.5).clamp(0, 1 - 1e-6) * grid  # (clips·T, 2)
    under = (centre[:, 1].long() * grid + centre[:, 0].long())[:, None, None]  # row-major cell
    actor_token = final[:, 1:].gather(1, under.expand(-1, 1, final.shape[-1]))[:, 0]  # (clips·T, C)
    shown = state[:, OPACITY] > 0.99
    outline = torch.atan2(state[:, SIN], state[:, COS]).double()[polygon] * order[polygon]
    return {
        "patch_position": held_out_r2(patches.flatten(0, 1), own.repeat(len(patches), 1)),
        "actor_centre": held_out_r2(final[:, 0], state[:, CENTRE]),
        "actor_turn": held_out_r2(final[:, 0], state[:, [SIN, COS]]),
        "actor_patch_turn": held_out_r2(actor_token[shown], state[shown][:, [SIN, COS]]),
        "actor_outline": held_out_r2(
            final[polygon, 0], torch.stack([outline.sin(), outline.cos()], dim=-1)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--clips", type=int, default=330, help="held-out clips (default 330)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    result = probe(args.bundle, args.clips)
    if args.json:
        print(json.dumps({"bundle": str(args.bundle), "clips": args.clips, **result}))
    else:
        print(f"{args.bundle.name}, {args.clips} held-out clips, R² on the held-out half:")
        for name, values in result.items():
            print(f"  {name:<17} " + "  ".join(f"{v:6.3f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
