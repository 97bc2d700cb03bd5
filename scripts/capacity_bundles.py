"""Writes live bundles of real serving size with random weights, for capacity benchmarks.

Issue 24 asks how many 30-fps streams one GPU holds with ViT-S/16 and ViT-B/16 at 224; the
shipped demo bundles are tiny (112 px, 4 blocks), so they say nothing about a GPU. Compute and
memory do not depend on the weights, so random ones measure capacity (not accuracy). The
bundles are causal factorized models (what the Eventful engine streams), 8 frames, the demo's
labels, stored in bfloat16 (half the file; they load in ``VIDREC_DTYPE`` either way).

python scripts/capacity_bundles.py /tmp/capacity
vidrec bench live --models-dir /tmp/capacity --model factorized_causal_vit_s16_224 \\
    --sizes 224 --fps 30 --workers 1 --server-env VIDREC_DTYPE=bfloat16 \\
    --server-env VIDREC_SESSION_CAPACITY=128 --out docs/live_bench_gpu.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from model_core import create_model
from model_core.checkpoint import save_bundle
from model_core.data import CLASS_NAMES

# Bundle name -> registered backbone.
BACKBONES = {
    "factorized_causal_vit_s16_224": "factorized_vit_small_patch16_224",
    "factorized_causal_vit_b16_224": "factorized_vit_base_patch16_224",
}


def write(directory: Path, names: Sequence[str], seed: int = 0) -> list[Path]:
    """Writes the bundles ``names`` (keys of :data:`BACKBONES`) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        torch.manual_seed(seed)
        model = create_model(
            BACKBONES[name], causal=True, img_size=224, num_frames=8, labels=CLASS_NAMES
        )
        facts = {"random_weights": True, "purpose": "capacity benchmarks, not labels"}
        paths.append(
            save_bundle(model, directory / f"{name}.safetensors", facts, dtype=torch.bfloat16)
        )
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to write the bundles")
    parser.add_argument("--models", nargs="+", choices=sorted(BACKBONES), default=sorted(BACKBONES))
    args = parser.parse_args(argv)
    for path in write(args.directory, args.models):
        print(f"{path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
