"""The shared preprocessing from uint8 frames to normalised model input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_core.config import Preprocessing
from model_core.preprocess import preprocess_frames

SPEC = Preprocessing(img_size=112, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 0.5), crop_pct=0.875)


def test_shape_dtype_and_normalisation() -> None:
    frames = np.full((4, 90, 160, 3), 255, dtype=np.uint8)
    frames[..., 1] = 0
    x = preprocess_frames(frames, SPEC)
    assert x.shape == (4, 3, 112, 112) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0], torch.full((4, 112, 112), 2.0))  # (1 - .5) / .25
    torch.testing.assert_close(x[:, 1], torch.full((4, 112, 112), -1.0))


def test_short_side_resize_then_centre_crop() -> None:
    # A wide frame whose left and right thirds are black: the centre crop sees white only.
    frames = np.zeros((1, 128, 384, 3), dtype=np.uint8)
    frames[:, :, 128:256] = 255
    x = preprocess_frames(frames, SPEC)
    assert SPEC.resize_size == 128
    assert torch.allclose(x[:, 1], torch.ones_like(x[:, 1]), atol=1e-3)


def test_accepts_torch_frames_and_upscales_small_ones() -> None:
    frames = torch.randint(0, 255, (2, 40, 30, 3), dtype=torch.uint8)
    assert preprocess_frames(frames, SPEC).shape == (2, 3, 112, 112)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((4, 8, 8), np.uint8), "expected"),
        (np.zeros((4, 8, 8, 3), np.float32), "uint8"),
        (np.zeros((0, 8, 8, 3), np.uint8), "no frames"),
    ],
)
def test_bad_frames_are_clear_errors(frames: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preprocess_frames(frames, SPEC)
