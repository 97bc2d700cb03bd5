"""research/readout_probe.py: ridge probes of the turn on a bundle's tokens, block by block."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core import create_model, save_bundle

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "research"))
from readout_probe import main, ridge_accuracy  # noqa: E402


def test_the_ridge_probe_finds_a_direction_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([-1.0, 1.0], size=400)
    noise = rng.normal(size=(400, 16))
    assert ridge_accuracy(noise, labels) < 0.65
    signal = noise.copy()
    signal[:, 3] += 2.0 * labels  # one feature carries the label
    assert ridge_accuracy(signal, labels) > 0.9


def test_every_block_and_the_pooled_features_are_probed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = create_model("vast_vit_tiny_patch16_224", img_size=32, depth=2, num_frames=4)
    bundle = save_bundle(model, tmp_path / "tiny.safetensors")
    out = tmp_path / "probe.json"
    assert main([str(bundle), "--clips", "110", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert (row["run"], row["family"], row["blocks"]) == ("tiny", "vast", 2)
    assert row["rotation_clips"] == 20  # 110 balanced clips, two of eleven classes
    assert len(row["actor_patch"]) == len(row["cls"]) == 3  # two blocks and the final norm
    values = [*row["actor_patch"], *row["cls"], row["patch_mean"], row["patch_max"]]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert "final norm" in capsys.readouterr().out
