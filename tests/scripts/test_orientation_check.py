"""scripts/orientation_check.py: orientation from one frame, by a CNN and by the bundles' ViT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.data import TRAIN_SEEDS, generate_clip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from orientation_check import CROP, SHIFT, SPEC, frames_and_targets, main  # noqa: E402


def test_the_crop_is_centred_on_the_actor_and_targets_are_its_orientation() -> None:
    seeds = [s for s in TRAIN_SEEDS[:22] if generate_clip(s, spec=SPEC).track.opacity.min() > 0.99]
    x, y = frames_and_targets(seeds, "crop")
    assert x.shape == (2 * len(seeds), 3, CROP, CROP)
    for i, seed in enumerate(seeds):
        clip = generate_clip(seed, spec=SPEC)
        # The centre of the crop is the actor's fill (the marker sits half a radius away).
        centre = (
            x[2 * i, :, CROP // 2 - 1 : CROP // 2 + 1, CROP // 2 - 1 : CROP // 2 + 1] + 1
        ) * 127.5
        fill = np.asarray(clip.actor.colour, np.float32)
        assert np.abs(centre.mean((1, 2)).numpy() - fill).max() < 25, seed
        angle = np.deg2rad(clip.track.angle[0])
        assert y[2 * i].numpy() == pytest.approx([np.sin(angle), np.cos(angle)], abs=1e-6)
    frames, _ = frames_and_targets(seeds[:2], "frame")
    assert frames.shape == (4, 3, SPEC.size, SPEC.size)


def test_the_shifted_crop_is_the_centred_one_moved_by_at_most_half_a_patch() -> None:
    seed = next(s for s in TRAIN_SEEDS if generate_clip(s, spec=SPEC).track.opacity.min() > 0.99)
    centred, _ = frames_and_targets([seed], "crop")
    shifted, _ = frames_and_targets([seed], "shifted")
    inner = centred[0, :, SHIFT:-SHIFT, SHIFT:-SHIFT]  # every pixel any shift keeps in view
    moves = [
        (dy, dx)
        for dy in range(-SHIFT, SHIFT + 1)
        for dx in range(-SHIFT, SHIFT + 1)
        if bool(
            (
                shifted[0, :, SHIFT - dy : CROP - SHIFT - dy, SHIFT - dx : CROP - SHIFT - dx]
                == inner
            ).all()
        )
    ]
    assert len(moves) == 1 and moves[0] != (0, 0), moves


def test_reports_every_model_and_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check.json"
    assert main(["--steps", "2", "--batch-size", "2", "--heldout", "11", "--json", str(out)]) == 0
    assert "R² sin" in capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {(r["model"], r["view"]): r for r in report["rows"]}
    assert set(rows) == {(m, v) for m in ("cnn", "vit") for v in ("crop", "shifted", "frame")}
    for row in rows.values():
        assert row["heldout_frames"] > 0 and len(row["r2"]) == 2
        assert all(np.isfinite(v) and v <= 1 for v in row["r2"])
        assert row["curve"][-1]["step"] == 2


def test_rejects_zero_steps() -> None:
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
