"""Position embeddings: resampling to another patch grid, and a 2-D sine-cosine starting point."""

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


def sincos_2d(grid: int, dim: int) -> Tensor:
    """``(grid·grid, dim)`` fixed 2-D sine-cosine embeddings of a patch grid, raster order.

    A quarter of the channels each: sin and cos of the column, then of the row, at geometric
    frequencies from 1 to 1/10000 (MAE's layout). ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"a 2-D sine-cosine embedding needs channels divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    steps = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    parts = []
    for coord in (cols.reshape(-1), rows.reshape(-1)):
        angle = coord[:, None] * omega[None]  # (grid·grid, dim / 4)
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1).float()
