"""Resampling learned position embeddings to another patch grid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def resample_pos_embed(pos_embed: Tensor, new_grid: int, num_prefix_tokens: int = 1) -> Tensor:
    """Bicubically resizes ``(1, prefix + g·g, C)`` position embeddings to ``new_grid``.

    The prefix (CLS) embeddings are kept as they are, as timm does.
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old_grid = math.isqrt(grid.shape[1])
    if old_grid * old_grid != grid.shape[1]:
        raise ValueError(f"position embedding of {grid.shape[1]} patches is not a square grid")
    if old_grid == new_grid:
        return pos_embed
    channels = grid.shape[-1]
    grid = grid.reshape(1, old_grid, old_grid, channels).permute(0, 3, 1, 2)
    # (1, C, g, g)
    grid = F.interpolate(
        grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False
    )
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, channels).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
