"""Trains the demo bundles shipped in model_core/zoo/bundles and regenerates docs/MODELS.md.

python scripts/train_demo_bundles.py                 # all of them, in order
python scripts/train_demo_bundles.py tokshift_tiny_motion112 --steps 2000

The two defaults (tokshift for clips, causal factorized for live streams) are trained from
scratch with the auxiliary actor supervision (docs/DATASET.md, "Training"); the other families
start from the tokshift bundle's backbone (``--init``), which all of them share by name, and are
fine-tuned for fewer steps. Each run ends with a held-out evaluation that the bundle records.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from model_core.zoo import DEMO_MODELS, bundle_dir

ROOT = Path(__file__).resolve().parent.parent
BATCH = 16
# The backbone every fine-tuned family starts from.
BASE = "tokshift_tiny_motion112"
SCRATCH = ("tokshift_tiny_motion112", "factorized_causal_tiny_motion112")


def command(name: str, steps: int, threads: int) -> list[str]:
    registry_name, causal = DEMO_MODELS[name]
    words = [
        str(Path(sys.executable).with_name("vidrec")), "train", registry_name,
        "--output", str(bundle_dir() / f"{name}.safetensors"),
        "--depth", "4", "--crop-pct", "1.0",
        "--clips", str(steps * BATCH), "--fresh-data", "--batch-size", str(BATCH),
        "--warmup", "0.03", "--actor-loss", "1.0",
        "--eval-clips", "440", "--threads", str(threads),
    ]  # fmt: skip
    if causal:
        words.append("--causal")
    if name in SCRATCH:
        words += ["--lr", "1e-3"]
    else:
        words += ["--lr", "5e-4", "--init", str(bundle_dir() / f"{BASE}.safetensors")]
    return words


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(DEMO_MODELS), help="bundles to train")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    for name in args.names:
        if name not in DEMO_MODELS:
            parser.error(f"unknown demo bundle {name!r}; known: {', '.join(DEMO_MODELS)}")
        steps = args.steps or (2000 if name in SCRATCH else 600)
        words = command(name, steps, args.threads)
        print("$ vidrec", " ".join(words[1:]), flush=True)
        subprocess.run(words, check=True, cwd=ROOT)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_model_docs.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
