"""Trains the demo bundles shipped in model_core/zoo/bundles and regenerates docs/MODELS.md.

python scripts/train_demo_bundles.py                  # the two defaults, both stages
python scripts/train_demo_bundles.py tokshift_tiny_motion112 --threads 2

Each bundle is trained from scratch with the auxiliary actor supervision (docs/DATASET.md,
"Training") in two stages: 2000 steps at a peak learning rate of 1e-3, then 1000 more on new clips
from the first stage's weights (``--init``) at 5e-4. Each stage ends with a held-out evaluation
that the bundle records, and the second stage's bundle keeps the first's record, so
docs/MODELS.md lists both commands. The result is stored in float16 (``save_bundle(dtype=...)``),
which keeps every bundle under 10 MB; ``load_bundle`` builds float32.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from model_core import load_bundle, save_bundle
from model_core.checkpoint import read_bundle_config
from model_core.zoo import DEFAULT_CLIP_MODEL, DEFAULT_LIVE_MODEL, DEMO_MODELS, bundle_dir

ROOT = Path(__file__).resolve().parent.parent
BATCH = 16
# (steps, peak learning rate, seed, first clip's index in TRAIN_SEEDS) of each stage.
STAGES = ((2000, "1e-3", 0, 0), (1000, "5e-4", 1, 40000))


def stage_command(
    name: str, stage: int, output: Path, init: Path | None, threads: int
) -> list[str]:
    registry_name, causal = DEMO_MODELS[name]
    steps, lr, seed, offset = STAGES[stage]
    words = [
        str(Path(sys.executable).with_name("vidrec")), "train", registry_name,
        "--output", str(output),
        "--depth", "4", "--crop-pct", "1.0",
        "--clips", str(steps * BATCH), "--seed-offset", str(offset), "--fresh-data",
        "--batch-size", str(BATCH), "--lr", lr, "--warmup", "0.03", "--actor-loss", "1.0",
        "--seed", str(seed), "--eval-clips", "440", "--threads", str(threads),
    ]  # fmt: skip
    if causal:
        words.append("--causal")
    if init is not None:
        words += ["--init", str(init)]
    return words


def store_half(source: Path, target: Path) -> Path:
    """Re-saves a bundle with float16 weights, keeping its metadata."""
    _, training = read_bundle_config(source)
    return save_bundle(load_bundle(source), target, training=training, dtype=torch.float16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "names", nargs="*", default=[DEFAULT_CLIP_MODEL, DEFAULT_LIVE_MODEL], help="bundles"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    for name in args.names:
        if name not in DEMO_MODELS:
            parser.error(f"unknown demo bundle {name!r}; known: {', '.join(DEMO_MODELS)}")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.names:
            init: Path | None = None
            for stage in range(len(STAGES)):
                output = Path(scratch) / f"{name}.stage{stage + 1}.safetensors"
                words = stage_command(name, stage, output, init, args.threads)
                print("$ vidrec", " ".join(words[1:]), flush=True)
                subprocess.run(words, check=True, cwd=ROOT)
                init = output
            assert init is not None
            print("wrote", store_half(init, bundle_dir() / f"{name}.safetensors"), flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_model_docs.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
