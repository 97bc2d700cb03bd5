"""Trains the demo bundles shipped in model_core/zoo/bundles and regenerates docs/MODELS.md.

python recipes/train_demo_bundles.py                      # every bundle, every stage
python recipes/train_demo_bundles.py tokshift_tiny_motion112 --threads 2
python recipes/train_demo_bundles.py tokshift_tiny_motion112 laps_tiny_motion112 --workers 6  # GPU

Every bundle is a chain of ``vidrec train`` runs, each ``--init`` from the last (``RECIPES``):

- tokshift (the clip default): from a ViT backbone that reads the actor's orientation from
  whole frames (``recipes/orientation_check.py`` with ``ORIENTATION_ARGS``: single frames, a
  crop grown from centred to shifted, then the whole frame), four stages in batches of 32 with
  all three auxiliary supervisions (actor, motion and ``--turn-loss``): 1042 steps, 428 with H.264
  round trips of half the clips, 1400 clean and 800 with round trips at lr 3e-4. These ran on
  a GPU (the step counts are what a time budget there gave); on a CPU they take hours;
- factorized causal (the live default), laps and xvit: 1200 steps each from tokshift's third
  stage, as tokshift's stages (laps on the GPU, the other two on one CPU core each), and for
  xvit 1200 more the same way;
- vast: 3000 steps from the whole of tokshift's chain at lr 1.2e-3, as tokshift's stages (on the
  GPU; about 45 minutes on a CPU). Its head reads each frame's patch tokens by max pooling (the
  family's ``readout``); its affine-shift mixer's ``fc`` starts from the value rows of ``qkv``.
  The run that made the shipped bundle started from the shipped tokshift bundle, that is the
  fourth stage stored in float16;
- every temporal bundle (all but vit_avg) then ends with one more stage, ``varied_stage``: 1200
  steps (1500 for xvit) in batches of 16 at lr 3e-4, seven in ten clips drawn in the generator's
  varied scene (flat, tiled, textured and panning backgrounds; thin, small, faint actors;
  stronger noise) and the rest classic, each at its own frame rate from 5 to 20 fps, half of
  them through H.264, with all three auxiliary losses. Without it the bundles named 30-72% of
  the clips of an independent renderer right (tests/model_core/zoo/independent_renderer.py).
  These five ran side by side on a 2-core CPU, one thread each, 65 to 100 minutes; each started
  from its shipped bundle, that is the stage before stored in float16;
- tokshift, factorized causal, laps and xvit, which still named fewer than 95% of those clips
  right, then had a second varied stage of 1800 steps, the same way (four side by side on the
  2-core CPU, one thread each), again from the shipped bundle; xvit a third (two side by side
  with one for laps, which did not ship: it gained nothing on the renderer's clips);
- tokshift, factorized causal, laps and xvit then end with ``fine_stage``: 1500 steps of
  ``varied_stage`` whose varied share is drawn in the ``"fine"`` scene (smaller actors and
  markers, sizes down to 0.035 of the frame), from the shipped bundle, four side by side on the
  2-core CPU, one thread each, in about 45 minutes (a second one for laps, 1800 steps, gained
  nothing and did not ship);
- vit_avg was trained before the sine-cosine start existed and keeps its chain: a 2000-step
  tokshift stage with the actor supervision alone, then its own stage.

Each run ends with a held-out evaluation that the bundle records, and a bundle keeps the record
of its ``--init``, so docs/MODELS.md lists every command behind it. The result is stored in
float16 (``save_bundle(dtype=...)``), which keeps every bundle under 10 MB; ``load_bundle``
builds float32.

The 2000-step first stage of vit_avg ran before the actor-state targets were centred
and scaled (commit a99467d); with today's code it trains on the scaled targets.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from model_core import load_bundle, save_bundle
from model_core.checkpoint import read_bundle_config
from model_core.zoo import DEFAULT_CLIP_MODEL, DEFAULT_LIVE_MODEL, DEMO_MODELS, bundle_dir

ROOT = Path(__file__).resolve().parent.parent
BATCH = 16


@dataclass(frozen=True)
class Stage:
    """One ``vidrec train`` run: its length, peak learning rate, seeds and auxiliary losses."""

    steps: int
    lr: str
    seed: int
    offset: int  # first clip's index in TRAIN_SEEDS; runs never share clips
    motion_loss: str
    codec_augment: str | None = None
    model: str | None = None  # another demo model's architecture (a stage borrowed from it)
    batch: int = BATCH
    turn_loss: str | None = None  # the orientation probe's weight (--turn-loss), when used
    fps_range: tuple[str, str] | None = None  # each clip at its own frame rate (--fps-range)
    varied_share: str | None = None  # share of the clips in the varied scene (--varied-share)
    varied_scene: str | None = None  # that share's scene when not "varied" (--varied-scene)


def varied_stage(steps: int, seed: int, offset: int) -> Stage:
    """The last stage of every temporal bundle: batches of 16, seven in ten clips in the varied
    scene and the rest classic, each at its own frame rate from 5 to 20 fps, H.264 round trips of
    half of them, all three auxiliary losses, at lr 3e-4."""
    return Stage(
        steps, "3e-4", seed, offset, "1.0", codec_augment="0.5", turn_loss="1.0",
        fps_range=("5", "20"), varied_share="0.7",
    )  # fmt: skip


def fine_stage(steps: int, seed: int, offset: int) -> Stage:
    """A ``varied_stage`` whose varied share is drawn in the ``"fine"`` scene (smaller actors and
    markers, sizes down to 0.035 of the frame)."""
    return replace(varied_stage(steps, seed, offset), varied_scene="fine")


def turn_stage(steps: int, seed: int, offset: int, lr: str = "5e-4", codec: bool = False) -> Stage:
    """A stage of the bundles trained with the turn supervision: batches of 32, all three
    auxiliary losses, H.264 round trips of half the clips if ``codec``."""
    return Stage(
        steps, lr, seed, offset, "1.0", codec_augment="0.5" if codec else None, batch=32,
        turn_loss="1.0",
    )  # fmt: skip


# The ViT backbone that reads the actor's orientation from whole frames (research/NOTES.md, "A
# model built to see it"), trained on single frames by recipes/orientation_check.py with these
# arguments: the start of the bundles trained with the turn supervision.
ORIENTATION_ARGS = (
    "--models", "vit", "--views", "shifted", "frame", "--readout", "patch",
    "--shift-ramp", "0.5", "--chain", "--steps", "3000",
)  # fmt: skip
ORIENTATION = ("orientation", 0)  # a recipe's start: the backbone ORIENTATION_ARGS saves


# The first stage of the bundles trained before the sine-cosine position start: tokshift from
# scratch with the actor supervision alone. vit_avg still starts from it.
NOISE_POSITION_STAGE = Stage(2000, "1e-3", 0, 0, "0", model=DEFAULT_CLIP_MODEL)
# (where the chain starts: None from scratch, ORIENTATION from the orientation backbone, or
# (bundle, n) from the first n stages of another bundle's chain), stages
RECIPES: dict[str, tuple[tuple[str, int] | None, tuple[Stage, ...]]] = {
    DEFAULT_CLIP_MODEL: (
        ORIENTATION,
        (
            turn_stage(1042, 103, 23_000_000),
            turn_stage(428, 203, 33_000_000, codec=True),
            turn_stage(1400, 300, 40_000_000),
            turn_stage(800, 400, 50_000_000, lr="3e-4", codec=True),
            varied_stage(1200, 1001, 100_000_000),
            varied_stage(1800, 1011, 105_000_000),
            fine_stage(1500, 1031, 112_000_000),
        ),
    ),
    DEFAULT_LIVE_MODEL: (
        (DEFAULT_CLIP_MODEL, 3),
        (
            turn_stage(1200, 407, 57_000_000),
            varied_stage(1200, 1002, 101_000_000),
            varied_stage(1800, 1012, 106_000_000),
            fine_stage(1500, 1032, 115_000_000),
        ),
    ),
    "laps_tiny_motion112": (
        (DEFAULT_CLIP_MODEL, 3),
        (
            turn_stage(1200, 405, 55_000_000),
            varied_stage(1200, 1003, 102_000_000),
            varied_stage(1800, 1013, 107_000_000),
            fine_stage(1500, 1033, 113_000_000),
        ),
    ),
    "vast_tiny_motion112": (
        (DEFAULT_CLIP_MODEL, 4),
        (turn_stage(3000, 611, 83_000_000, lr="1.2e-3"), varied_stage(1200, 1004, 103_000_000)),
    ),
    "vit_avg_tiny_motion112": (
        None,
        (NOISE_POSITION_STAGE, Stage(1000, "8e-4", 6, 400_000, "0")),
    ),
    "xvit_tiny_motion112": (
        (DEFAULT_CLIP_MODEL, 3),
        (
            turn_stage(1200, 408, 58_000_000),
            turn_stage(1200, 409, 59_000_000),
            varied_stage(1500, 1005, 104_000_000),
            varied_stage(1800, 1015, 109_000_000),
            varied_stage(1800, 1025, 111_000_000),
            fine_stage(1500, 1035, 114_000_000),
        ),
    ),
}


def recipe(name: str) -> tuple[tuple[str, int] | None, tuple[Stage, ...]]:
    """Where a demo model starts (``None``: from scratch; ``ORIENTATION``: from the orientation
    backbone; ``(bundle, n)``: from stage n of another bundle) and its stages."""
    return RECIPES[name]


def stage_path(scratch: Path, name: str, stage: int) -> Path:
    """Where stage ``stage`` (from 1) of bundle ``name`` is written."""
    return scratch / f"{name}.stage{stage}.safetensors"


def stage_command(
    name: str, stage: Stage, output: Path, init: Path | None, threads: int, workers: int = 0
) -> list[str]:
    registry_name, causal = DEMO_MODELS[stage.model or name]
    words = [
        str(Path(sys.executable).with_name("vidrec")), "train", registry_name,
        "--output", str(output),
        "--depth", "4", "--crop-pct", "1.0",
        "--clips", str(stage.steps * stage.batch), "--seed-offset", str(stage.offset),
        "--fresh-data", "--batch-size", str(stage.batch), "--lr", stage.lr, "--warmup", "0.03",
        "--actor-loss", "1.0", "--motion-loss", stage.motion_loss,
        "--seed", str(stage.seed), "--eval-clips", "440", "--threads", str(threads),
        "--workers", str(workers),
    ]  # fmt: skip
    if stage.turn_loss is not None:
        words += ["--turn-loss", stage.turn_loss]
    if stage.codec_augment is not None:
        words += ["--codec-augment", stage.codec_augment]
    if stage.fps_range is not None:
        words += ["--fps-range", *stage.fps_range]
    if stage.varied_share is not None:
        words += ["--varied-share", stage.varied_share]
    if stage.varied_scene is not None:
        words += ["--varied-scene", stage.varied_scene]
    if causal:
        words.append("--causal")
    if init is not None:
        words += ["--init", str(init)]
    return words


def orientation_command(output: Path, threads: int) -> list[str]:
    """The single-frame curriculum whose ViT backbone starts the ``ORIENTATION`` recipes."""
    script = str(ROOT / "recipes" / "orientation_check.py")
    return [
        sys.executable,
        script,
        *ORIENTATION_ARGS,
        "--threads",
        str(threads),
        "--save",
        str(output),
    ]


def store_half(source: Path, target: Path) -> Path:
    """Re-saves a bundle with float16 weights, keeping its metadata."""
    _, training = read_bundle_config(source)
    return save_bundle(load_bundle(source), target, training=training, dtype=torch.float16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(DEMO_MODELS), help="bundles")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--workers", type=int, default=0, help="clip-making processes per run (for a GPU)"
    )
    args = parser.parse_args()
    for name in args.names:
        if name not in DEMO_MODELS:
            parser.error(f"unknown demo bundle {name!r}; known: {', '.join(DEMO_MODELS)}")
    # The bundle others start from is trained first.
    names = sorted(args.names, key=lambda n: n != DEFAULT_CLIP_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in names:
            start, stages = recipe(name)
            init = None
            if start == ORIENTATION:
                init = stage_path(scratch, *start)
                if not init.exists():
                    words = orientation_command(init, args.threads)
                    print("$ python", " ".join(words[1:]), flush=True)
                    subprocess.run(words, check=True, cwd=ROOT)
            elif start is not None:
                init = stage_path(scratch, *start)
                if not init.exists():
                    parser.error(f"{name} starts from {start[0]} (stage {start[1]}): train both")
            for index, stage in enumerate(stages):
                output = stage_path(scratch, name, index + 1)
                words = stage_command(name, stage, output, init, args.threads, args.workers)
                print("$ vidrec", " ".join(words[1:]), flush=True)
                subprocess.run(words, check=True, cwd=ROOT)
                init = output
            assert init is not None
            print("wrote", store_half(init, bundle_dir() / f"{name}.safetensors"), flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_model_docs.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
