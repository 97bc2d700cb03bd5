"""Tiny models and clips that keep the training tests fast on two shared cores."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from model_core import VideoTransformer, create_model
from model_core.data import CLASS_NAMES, ClipSpec

TINY_MODEL = "tokshift_vit_tiny_patch16_224"


@pytest.fixture
def tiny_spec() -> ClipSpec:
    return ClipSpec(frames=4, size=32)


@pytest.fixture
def make_tiny_model() -> Callable[..., VideoTransformer]:
    """Builds a 2-block, 32-pixel, 4-frame model over the dataset's classes, seeded."""

    def make(seed: int = 0, name: str = TINY_MODEL, **overrides: object) -> VideoTransformer:
        torch.manual_seed(seed)
        args = {
            "img_size": 32,
            "num_frames": 4,
            "depth": 2,
            "labels": list(CLASS_NAMES),
            "crop_pct": 1.0,
            **overrides,
        }
        return create_model(name, **args)

    return make


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every test here runs tiny models in-process (see tests/conftest.py)."""
