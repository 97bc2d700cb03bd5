"""research/probe_positions.py: held-out R² of linear probes on a bundle's features."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from model_core import create_model, save_bundle
from model_core.data import CLASS_NAMES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "research"))
from probe_positions import held_out_r2, main  # noqa: E402


def test_r2_is_one_for_a_linear_target_and_about_zero_for_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 8, generator=generator)
    linear = features @ torch.randn(8, 2, generator=generator) + 3.0
    noise = torch.randn(400, 1, generator=generator)
    assert held_out_r2(features, linear, ridge=1e-6) == pytest.approx([1.0, 1.0], abs=1e-3)
    assert held_out_r2(features, noise)[0] < 0.05


def test_reports_every_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = create_model(
        "tokshift_vit_tiny_patch16_224",
        img_size=64,
        depth=1,
        num_frames=4,
        labels=list(CLASS_NAMES),
        crop_pct=1.0,
    )
    path = save_bundle(model, tmp_path / "tiny.safetensors")
    assert main([str(path), "--clips", "22", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 22
    for probe in (
        "patch_position",
        "actor_centre",
        "actor_turn",
        "actor_patch_turn",
        "actor_outline",
    ):
        assert len(report[probe]) == 2 and all(v <= 1 for v in report[probe]), probe
