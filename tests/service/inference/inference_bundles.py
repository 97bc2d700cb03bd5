"""Tiny random-weight bundles for the inference and CLI tests (no trained bundle ships yet).

112 px, 8 frames, depth 2, the 11 labels of the procedural dataset, saved with ``save_bundle``
under the shipped demo names so the catalog's defaults come from ``model_core.zoo``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model_core import create_model, save_bundle
from model_core.data import CLASS_NAMES, ClipSpec, generate_clip

CLIP_MODEL = "tokshift_tiny_motion112"
LIVE_MODEL = "factorized_causal_tiny_motion112"
AVG_MODEL = "vit_avg_tiny_motion112"

# bundle name -> (registry model, extra overrides)
TINY: dict[str, tuple[str, dict]] = {
    CLIP_MODEL: ("tokshift_vit_tiny_patch16_224", {}),
    LIVE_MODEL: ("factorized_vit_tiny_patch16_224", {"causal": True, "options": {"head_depth": 1}}),
    AVG_MODEL: ("vit_avg_vit_tiny_patch16_224", {}),
}


def write_bundles(directory: Path, names: tuple[str, ...] = tuple(TINY)) -> Path:
    """Writes the tiny bundles ``names`` into ``directory``; returns it."""
    for index, name in enumerate(names):
        registry, overrides = TINY[name]
        torch.manual_seed(index)
        model = create_model(
            registry, img_size=112, depth=2, labels=CLASS_NAMES, num_frames=8, **overrides
        )
        save_bundle(model, directory / f"{name}.safetensors", training={"test": True})
    return directory


def clip_frames(seed: int, frames: int = 8, size: int = 112) -> np.ndarray:
    """``(frames, size, size, 3)`` uint8 frames of a generated action clip."""
    return generate_clip(seed, spec=ClipSpec(frames=frames, size=size)).frames
