"""Shared models and synthetic streams for the eventful engine tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from model_core import create_model
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]


def moving_square_stream(
    frames: int, size: int, seed: int = 0, square: int = 24, speed: int = 3
) -> torch.Tensor:
    """``(frames, 3, size, size)``: a static random background with one square moving right,
    so each frame changes only a few patches (the incremental path is really exercised)."""
    generator = torch.Generator().manual_seed(seed)
    background = torch.randn(3, size, size, generator=generator)
    colour = torch.randn(3, 1, 1, generator=generator)
    top = int(torch.randint(0, size - square, (1,), generator=generator))
    out = background.repeat(frames, 1, 1, 1)  # (frames, 3, size, size)
    for t in range(frames):
        left = (seed * 7 + speed * t) % (size - square)
        out[t, :, top : top + square, left : left + square] = colour
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every test here runs tiny models in-process (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def stream() -> StreamFn:
    return moving_square_stream


@pytest.fixture(scope="session")
def tiny() -> VideoTransformer:
    """A causal factorized ViT-Ti at 112 px with random weights (no trained bundle ships yet)."""
    torch.manual_seed(0)
    return create_model(
        "factorized_vit_tiny_patch16_224", causal=True, img_size=112, num_classes=10
    ).eval()


@pytest.fixture(scope="session")
def shallow() -> VideoTransformer:
    """A 4-block causal factorized ViT-Ti at 64 px: for tests that run many steps."""
    torch.manual_seed(1)
    return create_model(
        "factorized_vit_tiny_patch16_224",
        causal=True,
        img_size=64,
        depth=4,
        num_classes=6,
        options={"head_depth": 1},
    ).eval()


@pytest.fixture(scope="session")
def shallow_tokshift() -> VideoTransformer:
    """A 4-block causal TokShift ViT-Ti at 64 px: its CLS shift carries state between frames."""
    torch.manual_seed(2)
    return create_model(
        "tokshift_vit_tiny_patch16_224", causal=True, img_size=64, depth=4, num_classes=6
    ).eval()


@pytest.fixture(params=["factorized", "tokshift"])
def streaming(
    request: pytest.FixtureRequest, shallow: VideoTransformer, shallow_tokshift: VideoTransformer
) -> VideoTransformer:
    """Each kind of model the engine streams: a per-frame encoder, and one whose blocks read the
    previous frame."""
    return shallow if request.param == "factorized" else shallow_tokshift
