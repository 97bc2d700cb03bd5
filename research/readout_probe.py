"""Where a model knows which way the actor turns: linear probes on its tokens, layer by layer.

For each bundle, held-out rotation clips (clockwise and anticlockwise) go through the model and
a ridge classifier, cross-validated over two halves, tells the two turns apart from:

- the token of the patch under the actor's centre after every block (averaged over the frames
  that have a previous frame);
- the CLS token after every block (averaged over the frames);
- the final patch tokens pooled over the patches by their mean, and by their maximum.

It is how VAST's readout was chosen (research/NOTES.md, "VAST's readout"): its actor patch tokens
knew the turn while its CLS token, which gathers the patches by their mean, did not.

python research/readout_probe.py runs/*.safetensors --json research/data/vast_readout_probe.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model_core import VideoTransformer, load_bundle
from model_core.checkpoint import read_training_record
from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, ClipSpec
from model_core.training.batches import ClipBatches
from model_core.training.targets import actor_patches

TURNS = ("rotate_clockwise", "rotate_anticlockwise")
# Past the 440 held-out clips every bundle's own evaluation scores.
DEFAULT_OFFSET = 5000


def ridge_accuracy(features: np.ndarray, labels: np.ndarray, penalty: float = 1.0) -> float:
    """Two-fold accuracy of a ridge classifier of ``(n, d)`` standardised features against
    ``labels`` in {-1, 1}: fitted on each half, scored on the other, the two scores averaged."""
    half = len(labels) // 2
    folds = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
    scores = []
    for fit, score in folds:
        mean, std = features[fit].mean(0), features[fit].std(0) + 1e-6
        a, b = (features[fit] - mean) / std, (features[score] - mean) / std
        gram = a.T @ a + penalty * len(a) * np.eye(a.shape[1])
        weights = np.linalg.solve(gram, a.T @ labels[fit])
        scores.append(float(((b @ weights > 0) == (labels[score] > 0)).mean()))
    return float(np.mean(scores))


def turn_features(
    model: VideoTransformer, clips: int, offset: int, batch_size: int = 64
) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
    """Per-clip features of the rotation clips among ``clips`` held-out clips from ``offset``:
    ``actor_patch`` and ``cls`` one array per block, ``patch_mean`` and ``patch_max`` of the
    final tokens; and the labels, 1 for clockwise and -1 for anticlockwise."""
    grid = model.config.img_size // model.config.patch_size
    spec = ClipSpec(frames=model.config.num_frames, size=model.config.img_size)
    batches = ClipBatches(
        HELDOUT_SEEDS, clips, batch_size, spec, model.config.preprocessing,
        shuffle=False, offset=offset, actor_grid=grid,
    )  # fmt: skip
    clockwise, anticlockwise = (CLASS_NAMES.index(name) for name in TURNS)
    layers: list[Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: layers.append(out)) for b in model.blocks]
    parts: dict[str, list[list[Tensor]]] = {"actor_patch": [], "cls": [], "pooled": []}
    labels: list[Tensor] = []
    try:
        with torch.no_grad():
            for batch in batches.batches(1):
                keep = (batch.labels == clockwise) | (batch.labels == anticlockwise)
                if not keep.any():
                    continue
                layers.clear()
                final = model.forward_features(batch.inputs[keep])  # (B, T, N, C)
                assert batch.states is not None
                index = 1 + actor_patches(batch.states[keep], grid)  # (B, T), past the CLS
                gather = index[..., None, None].expand(*index.shape, 1, final.shape[-1])
                tokens = [*layers, final]
                # frames from the second on: a turn needs the frame before
                parts["actor_patch"].append([t.gather(2, gather)[:, 1:, 0].mean(1) for t in tokens])
                parts["cls"].append([t[:, :, 0].mean(1) for t in tokens])
                patches = final[:, :, 1:]  # (B, T, P, C)
                parts["pooled"].append([patches.mean((1, 2)), patches.amax(2).mean(1)])
                labels.append((batch.labels[keep] == clockwise).float() * 2 - 1)
    finally:
        for hook in hooks:
            hook.remove()
    stacked = {
        key: [torch.cat(column).numpy() for column in zip(*rows, strict=True)]
        for key, rows in parts.items()
    }
    features = {
        "actor_patch": stacked["actor_patch"],
        "cls": stacked["cls"],
        "patch_mean": stacked["pooled"][:1],
        "patch_max": stacked["pooled"][1:],
    }
    return features, torch.cat(labels).numpy()


def probe(path: Path, clips: int, offset: int) -> dict[str, Any]:
    """The probe accuracies of one bundle, with where its weights came from."""
    model = load_bundle(path).eval()
    features, labels = turn_features(model, clips, offset)
    record = read_training_record(path) or {}
    command = str(record.get("command", ""))
    words = shlex.split(command)
    run = Path(words[words.index("--output") + 1]).stem if "--output" in words else path.stem
    accuracy = {key: [ridge_accuracy(f, labels) for f in fs] for key, fs in features.items()}
    return {
        "bundle": path.name,
        "run": run,
        "family": model.config.family,
        "rotation_clips": len(labels),
        "blocks": len(model.blocks),
        # the last entry of each list is after the final norm
        "actor_patch": accuracy["actor_patch"],
        "cls": accuracy["cls"],
        "patch_mean": accuracy["patch_mean"][0],
        "patch_max": accuracy["patch_max"][0],
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        lines.append(f"{row['run']} ({row['family']}, {row['rotation_clips']} rotation clips)")
        for block, (patch, cls) in enumerate(zip(row["actor_patch"], row["cls"], strict=True)):
            name = f"block {block + 1}" if block < row["blocks"] else "final norm"
            lines.append(f"  {name:<10} actor patch {patch:.2f}   CLS {cls:.2f}")
        mean, peak = row["patch_mean"], row["patch_max"]
        lines.append(f"  pooled     patch mean {mean:.2f}   max {peak:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--clips", type=int, default=1320, help="held-out clips to draw from")
    parser.add_argument("--offset", type=int, default=DEFAULT_OFFSET, help="first held-out seed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [probe(path, args.clips, args.offset) for path in args.bundles]
    print(render(rows))
    if args.json is not None:
        machine = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        payload = {"clips": args.clips, "offset": args.offset, "machine": machine, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
