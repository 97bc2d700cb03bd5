"""From decoded uint8 frames to model input: the one preprocessing path that the CLI, the
worker and the tests share."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model_core.config import Preprocessing


def preprocess_frames(frames: np.ndarray | Tensor, spec: Preprocessing) -> Tensor:
    """Resizes, centre-crops and normalises a clip.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames (numpy or torch).
        spec: the model's preprocessing (``model.config.preprocessing``).

    Returns:
        ``(T, 3, S, S)`` float32 with ``S = spec.img_size``: the short side resized to
        ``spec.resize_size`` (bilinear, antialiased), the centre ``S x S`` crop, scaled to
        [0, 1] and normalised with the model's mean and std.
    """
    clip = torch.as_tensor(frames)
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) RGB frames, got shape {tuple(clip.shape)}")
    if clip.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {clip.dtype}")
    if clip.shape[0] == 0:
        raise ValueError("no frames to preprocess")
    x = clip.permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W)
    height, width = x.shape[-2:]
    scale = spec.resize_size / min(height, width)
    new_h, new_w = (
        max(spec.img_size, round(height * scale)),
        max(spec.img_size, round(width * scale)),
    )
    if (new_h, new_w) != (height, width):
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
    top, left = (new_h - spec.img_size) // 2, (new_w - spec.img_size) // 2
    x = x[:, :, top : top + spec.img_size, left : left + spec.img_size]
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()
