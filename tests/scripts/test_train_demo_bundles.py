"""scripts/train_demo_bundles.py: its recipes are the chains that made the shipped bundles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from model_core.checkpoint import read_bundle_config, training_chain
from model_core.zoo import DEMO_MODELS, list_bundles

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from train_demo_bundles import BATCH, Stage, recipe  # noqa: E402


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
        "pos_init": stage.pos_init == "sincos",
    }


def _recorded_facts(record: dict[str, Any]) -> dict[str, Any]:
    config = record["config"]
    assert config["batch_size"] == BATCH
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
        "pos_init": "--pos-init sincos" in record["command"],
    }


@pytest.mark.parametrize("name", sorted(list_bundles()))
def test_the_recipe_is_the_chain_the_shipped_bundle_records(name: str) -> None:
    _, training = read_bundle_config(list_bundles()[name])
    start, stages = recipe(name)
    expected = [_stage_facts(name, s) for s in stages]
    if start is not None:
        borrowed, count = start
        expected = [_stage_facts(borrowed, s) for s in recipe(borrowed)[1][:count]] + expected
    assert [_recorded_facts(r) for r in training_chain(training)] == expected
