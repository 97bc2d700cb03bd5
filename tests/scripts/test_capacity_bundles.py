"""scripts/capacity_bundles.py: ViT-S/16 at 224 with random weights, written as a live bundle the
service loads in bfloat16 and streams, at the size the capacity benchmark needs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core.data import CLASS_NAMES
from service.inference import LiveRunner, ModelCatalog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from capacity_bundles import main  # noqa: E402

NAME = "factorized_causal_vit_s16_224"


def test_a_vit_s16_bundle_streams_in_bfloat16(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    assert main([str(tmp_path), "--models", NAME]) == 0
    assert f"{NAME}.safetensors" in capsys.readouterr().out
    catalog = ModelCatalog.load(tmp_path, device="cpu", dtype="bfloat16")
    entry = catalog.get(NAME)
    assert entry.live and entry.dtype is torch.bfloat16
    assert (entry.img_size, entry.frames, entry.labels) == (224, 8, tuple(CLASS_NAMES))
    # ViT-S/16 at 224: about 22 M parameters in the backbone, 4.6 GMACs a frame.
    assert entry.gmacs_per_frame == pytest.approx(4.6, abs=0.1)
    assert 20e6 < entry.parameters < 40e6
    runner = LiveRunner(entry, capacity=1, stride=2)
    runner.open("cam", {"fraction": 0.25})
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    events = [runner.step({"cam": frame})["cam"] for _ in range(2)]
    assert events[0] is None and events[1] is not None
    assert len(events[1].labels) == 5
