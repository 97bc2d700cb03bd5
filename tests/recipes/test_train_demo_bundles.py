"""recipes/train_demo_bundles.py: its recipes are the chains that made the shipped bundles."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from model_core.checkpoint import read_bundle_config, training_chain
from model_core.zoo import DEMO_MODELS, list_bundles

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes"))
from train_demo_bundles import (  # noqa: E402
    ORIENTATION,
    ORIENTATION_ARGS,
    Stage,
    fine_stage,
    orientation_command,
    recipe,
    stage_command,
)


def _stage_facts(name: str, stage: Stage) -> dict[str, Any]:
    codec = None if stage.codec_augment is None else float(stage.codec_augment)
    return {
        "model": DEMO_MODELS[stage.model or name][0],
        "steps": stage.steps,
        "lr": float(stage.lr),
        "seed": stage.seed,
        "offset": stage.offset,
        "motion_loss": float(stage.motion_loss),
        "codec": codec,
        "batch": stage.batch,
        "turn_loss": 0.0 if stage.turn_loss is None else float(stage.turn_loss),
        "rates": None if stage.fps_range is None else tuple(float(v) for v in stage.fps_range),
        "varied": 0.0 if stage.varied_share is None else float(stage.varied_share),
        "varied_scene": stage.varied_scene or "varied",
    }


ORIENTATION_FACTS = {"orientation": " ".join(ORIENTATION_ARGS)}


def _rates(rates: dict[str, float]) -> tuple[float, float]:
    """A recorded frame-rate range (a bundle's header stores its keys sorted)."""
    return rates["low"], rates["high"]


def _recorded_facts(record: dict[str, Any]) -> dict[str, Any]:
    # The shipped chains ran the check from scripts/, where it lived until it moved to recipes/.
    if record["command"].startswith(
        ("python recipes/orientation_check.py", "python scripts/orientation_check.py")
    ):
        # The single-frame backbone: its arguments, less the files it wrote.
        words = iter(shlex.split(record["command"])[2:])
        # (next() drops the value that follows --json or --save)
        kept = [w for w in words if w not in ("--json", "--save") or next(words) is None]
        return {"orientation": " ".join(kept)}
    config = record["config"]
    codec = config.get("codec")
    return {
        "model": record["model"],
        "steps": record["steps"],
        "lr": config["lr"],
        "seed": config["seed"],
        "offset": config["offset"],
        # Runs from before the motion supervision existed did not record it.
        "motion_loss": config.get("motion_loss", 0.0),
        "codec": None if codec is None else codec["probability"],
        "batch": config["batch_size"],
        # Runs from before the turn supervision existed did not record it.
        "turn_loss": config.get("turn_loss", 0.0),
        # Nor the frame-rate range, before it existed.
        "rates": None if config.get("rates") is None else _rates(config["rates"]),
        # Nor the share of varied clips.
        "varied": config.get("varied_share", 0.0),
        # Nor the scene of that share, before the fine scene existed.
        "varied_scene": config.get("varied_scene", "varied"),
    }


@pytest.mark.parametrize("name", sorted(list_bundles()))
def test_the_recipe_is_the_chain_the_shipped_bundle_records(name: str) -> None:
    _, training = read_bundle_config(list_bundles()[name])
    start, stages = recipe(name)
    expected = [_stage_facts(name, s) for s in stages]
    if start == ORIENTATION:
        expected = [ORIENTATION_FACTS, *expected]
    elif start is not None:
        borrowed, count = start
        borrowed_start, borrowed_stages = recipe(borrowed)
        head = [ORIENTATION_FACTS] if borrowed_start == ORIENTATION else []
        expected = head + [_stage_facts(borrowed, s) for s in borrowed_stages[:count]] + expected
    assert [_recorded_facts(r) for r in training_chain(training)] == expected


def test_a_stage_command_asks_for_what_the_stage_records(tmp_path: Path) -> None:
    stage = recipe("laps_tiny_motion112")[1][0]
    words = stage_command("laps_tiny_motion112", stage, tmp_path / "o", tmp_path / "i", 1, 3)
    line = " ".join(words)
    assert f"--clips {stage.steps * stage.batch} " in line
    assert f"--batch-size {stage.batch} " in line
    assert "--turn-loss 1.0" in line and "--workers 3" in line
    assert line.endswith(f"--init {tmp_path / 'i'}")
    assert "--fps-range" not in line
    varied = replace(stage, fps_range=("5", "20"))
    assert "--fps-range 5 20 " in " ".join(
        stage_command("laps_tiny_motion112", varied, tmp_path / "o", tmp_path / "i", 1)
    )
    assert "--varied-share" not in line
    mixed = replace(stage, varied_share="0.7")
    assert "--varied-share 0.7 " in " ".join(
        stage_command("laps_tiny_motion112", mixed, tmp_path / "o", tmp_path / "i", 1)
    )
    assert "--varied-scene" not in line
    fine = " ".join(
        stage_command("laps_tiny_motion112", fine_stage(9, 1, 2), tmp_path / "o", None, 1)
    )
    assert "--varied-share 0.7 --varied-scene fine" in fine
    orientation = " ".join(orientation_command(tmp_path / "b.safetensors", 1))
    assert " ".join(ORIENTATION_ARGS) in orientation
    assert orientation.endswith(f"--save {tmp_path / 'b.safetensors'}")
