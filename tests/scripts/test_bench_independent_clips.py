"""scripts/bench_independent_clips.py: one row per bundle, and the earlier weights of a bundle
measured on the same clips when ``--before-dir`` names them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from model_core import load_bundle, save_bundle
from model_core.checkpoint import read_bundle_config
from model_core.zoo import list_bundles

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_independent_clips import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
CHANGED, SAME = "vast_tiny_motion112", "vit_avg_tiny_motion112"


def test_earlier_weights_are_scored_on_the_same_clips(tmp_path: Path) -> None:
    shipped = list_bundles()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    # Earlier weights of one bundle (its head zeroed: every clip gets the first class), and an
    # unchanged copy of another, which has no earlier weights to report.
    model = load_bundle(shipped[CHANGED])
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    _, training = read_bundle_config(shipped[CHANGED])
    save_bundle(model, earlier / f"{CHANGED}.safetensors", training=training)
    shutil.copy(shipped[SAME], earlier / f"{SAME}.safetensors")
    out = tmp_path / "bench.json"
    args = [str(out), "--clips-per-class", "1", "--seed-offset", "7", "--models", CHANGED, SAME]
    assert main([*args, "--before-dir", str(earlier)]) == 0
    report = json.loads(out.read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {CHANGED, SAME} and report["clips_per_class"] == 1
    assert "before" not in rows[SAME]
    before = rows[CHANGED]["before"]
    assert before["correct"] == 1  # the zeroed head names one class: one clip of 11 is that class
    assert rows[CHANGED]["clips"] == 11 and 0 <= rows[CHANGED]["correct"] <= 11
