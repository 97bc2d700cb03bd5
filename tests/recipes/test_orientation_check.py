"""recipes/orientation_check.py: orientation from one frame, by a CNN and by the bundles' ViT."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import create_model, load_checkpoint
from model_core.checkpoint import read_training_record
from model_core.data import TRAIN_SEEDS, generate_clip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes"))
from orientation_check import (  # noqa: E402
    CROP,
    SHIFT,
    SPEC,
    Settings,
    frames_and_targets,
    main,
    run,
    save_backbone,
)


def test_the_crop_is_centred_on_the_actor_and_targets_are_its_orientation() -> None:
    seeds = [s for s in TRAIN_SEEDS[:22] if generate_clip(s, spec=SPEC).track.opacity.min() > 0.99]
    x, y, patch = frames_and_targets(seeds, "crop")
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
    assert patch.tolist() == [4] * len(patch)  # the middle of the crop's 3 x 3 patches
    frames, _, patch = frames_and_targets(seeds[:2], "frame")
    assert frames.shape == (4, 3, SPEC.size, SPEC.size)
    for i, seed in enumerate(seeds[:2]):
        track = generate_clip(seed, spec=SPEC).track
        for t in range(2):
            row, column = divmod(int(patch[2 * i + t]), SPEC.size // 16)
            assert row * 16 <= track.y[t] * SPEC.size < (row + 1) * 16
            assert column * 16 <= track.x[t] * SPEC.size < (column + 1) * 16


def test_the_shifted_crop_is_the_centred_one_moved_by_at_most_half_a_patch() -> None:
    visible = [
        s for s in TRAIN_SEEDS[:60] if generate_clip(s, spec=SPEC).track.opacity.min() > 0.99
    ]
    patches = []
    for seed in visible[:10]:
        centred = frames_and_targets([seed], "crop").images
        shifted, _, patch = frames_and_targets([seed], "shifted")
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
        assert len(moves) == 1, moves
        # The crop moved by (dy, dx), so the actor's centre, at the middle of the centred crop
        # up to rounding to a pixel, moved the other way.
        dy, dx = moves[0]
        track = generate_clip(seed, spec=SPEC).track
        x, y = track.x[0] * SPEC.size, track.y[0] * SPEC.size
        centre_x = CROP // 2 + x - np.rint(x) - dx
        centre_y = CROP // 2 + y - np.rint(y) - dy
        assert divmod(int(patch[0]), CROP // 16) == (centre_y // 16, centre_x // 16)
        patches.append(int(patch[0]))
    assert {4} < set(patches)  # some crops moved the actor out of the middle patch


def test_a_shift_ramp_grows_the_training_shift_from_a_centred_crop() -> None:
    settings = Settings(steps=100, shift_ramp=0.5)
    shifts = [settings.shift_at(step) for step in range(1, 101)]
    assert shifts[0] == 0 and shifts[-1] == SHIFT and shifts == sorted(shifts)
    assert shifts.index(SHIFT) == 49  # full shift from half-way on
    assert {Settings(steps=100).shift_at(step) for step in (1, 50, 100)} == {SHIFT}
    seed = next(s for s in TRAIN_SEEDS if generate_clip(s, spec=SPEC).track.opacity.min() > 0.99)
    centred = frames_and_targets([seed], "crop").images
    assert bool((frames_and_targets([seed], "shifted", shift=0).images == centred).all())


def test_reports_every_model_and_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check.json"
    assert main(["--steps", "2", "--batch-size", "2", "--heldout", "11", "--json", str(out)]) == 0
    assert "R² sin" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["lr"] == 3e-4
    rows = {(r["model"], r["view"]): r for r in report["rows"]}
    assert set(rows) == {(m, v) for m in ("cnn", "vit") for v in ("crop", "shifted", "frame")}
    for row in rows.values():
        assert row["heldout_frames"] > 0 and len(row["r2"]) == 2
        assert all(np.isfinite(v) and v <= 1 for v in row["r2"])
        assert row["curve"][-1]["step"] == 2


def test_one_shifted_run_per_ramp(tmp_path: Path) -> None:
    out = tmp_path / "ramps.json"
    argv = ["--models", "vit", "--views", "crop", "shifted", "--shift-ramp", "0", "0.5"]
    argv += ["--readout", "cls", "patch"]
    assert (
        main([*argv, "--steps", "2", "--batch-size", "2", "--heldout", "11", "--json", str(out)])
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["view"], r["readout"], r["shift_ramp"]) for r in rows] == [
        ("crop", "cls", 0.0),
        ("crop", "patch", 0.0),
        ("shifted", "cls", 0.0),
        ("shifted", "cls", 0.5),
        ("shifted", "patch", 0.0),
        ("shifted", "patch", 0.5),
    ]


def test_a_chained_view_starts_from_the_weights_the_one_before_ended_with(tmp_path: Path) -> None:
    settings = Settings(steps=2, batch=2, heldout=11, readout="patch")
    crop = run("vit", "crop", settings)
    # A learning rate too small to move anything: the frame run ends where it started.
    frame = run("vit", "frame", replace(settings, lr=1e-12), start=crop)
    scratch = run("vit", "frame", replace(settings, lr=1e-12))
    assert crop.weights is not None and frame.weights is not None and scratch.weights is not None
    assert frame.started_from == "crop" and scratch.started_from == ""
    for name, value in crop.weights.items():
        if name.endswith("pos_embed"):  # its grid follows the view: 3 x 3 patches, then 7 x 7
            assert frame.weights[name].shape != value.shape
        else:
            assert torch.allclose(frame.weights[name], value, atol=1e-6), name
    qkv = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.allclose(scratch.weights[qkv], crop.weights[qkv], atol=1e-6)
    out = tmp_path / "chain.json"
    argv = ["--models", "vit", "--views", "crop", "frame", "--chain", "--readout", "patch"]
    assert (
        main([*argv, "--steps", "1", "--batch-size", "2", "--heldout", "11", "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["chain"] is True
    assert [(r["view"], r["started_from"]) for r in report["rows"]] == [
        ("crop", ""),
        ("frame", "crop"),
    ]
    assert all("weights" not in r for r in report["rows"])


def test_a_saved_backbone_starts_a_clip_model_with_its_blocks(tmp_path: Path) -> None:
    settings = Settings(steps=1, batch=2, heldout=11, readout="patch")
    frame = run("vit", "frame", settings)
    path = tmp_path / "backbone.safetensors"
    save_backbone(frame, path, "python recipes/orientation_check.py --views frame")
    record = read_training_record(path)
    assert record is not None and record["command"].endswith("--views frame")
    assert record["orientation"]["r2"] == frame.r2
    assert frame.weights is not None
    model = create_model(
        "xvit_vit_tiny_patch16_224", img_size=112, depth=4, num_frames=8, crop_pct=1.0
    )
    loaded = load_checkpoint(model, path, strict=False)
    state = model.state_dict()
    for key in ("pos_embed", "patch_embed.proj.weight", "blocks.3.mlp.fc2.weight"):
        assert key in loaded.loaded_keys
        torch.testing.assert_close(state[key], frame.weights["backbone." + key])
    assert not any(key.startswith("head.") for key in loaded.loaded_keys)
    with pytest.raises(SystemExit):
        main(["--models", "cnn", "--save", str(path)])


def test_rejects_zero_steps_and_a_learning_rate_that_is_not_positive() -> None:
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
    with pytest.raises(SystemExit):
        main(["--lr", "0"])
    with pytest.raises(SystemExit):
        main(["--shift-ramp", "1.5"])
    with pytest.raises(SystemExit):  # a chain is one ViT
        main(["--chain", "--models", "cnn", "vit"])
