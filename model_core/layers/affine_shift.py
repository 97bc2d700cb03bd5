"""VAST's attention-free token mixer: an affine shift.

The VAST paper publishes no code, so this is vidrec's design of its "affine-shift" block:

    y = fc(x)                                   # per-token linear, C -> C
    y = shift(y)                                # channel groups move one step in H, W and T
    y = y * scale + bias                        # per-channel affine (learned)
    out = proj(y)                               # per-token linear, C -> C

The channel axis is cut into eight equal groups: groups 0-3 read the neighbouring patch above,
below, left and right; groups 4 and 5 read frame t+1 and t-1 (zeros past every edge, as the
other papers' shifts); groups 6-7 stay. The CLS token has no grid position, so its spatial
groups read the mean of the patch tokens instead: that is how the CLS token gathers the image
without attention, at a cost of N·C/2 additions. Stacked blocks grow the receptive field by one
patch and one frame per block, so twelve blocks see a 25x25-patch, 25-frame neighbourhood.

Cost per token is 2C² + C multiply-accumulates against attention's 4C² + 2NC, and it has no
quadratic term. ``fc`` is a value projection: image-ViT weights initialise it from the value
slice of ``qkv`` (see ``model_core.checkpoint.adapt``).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor, nn

from .shift import shift_along

_SPATIAL_SHIFTS = ((-1, 2), (+1, 2), (-1, 3), (+1, 3))  # (offset, axis of (B, T, h, w, C))
_TEMPORAL_SHIFTS = (+1, -1)
_GROUPS = 8


class AffineShiftMixer(nn.Module):
    def __init__(self, dim: int, grid_size: int, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % _GROUPS:
            raise ValueError(f"affine shift needs dim divisible by {_GROUPS}, got {dim}")
        self.grid_size = grid_size
        self.fc = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc(x)
        b, t, n, c = y.shape
        g = c // _GROUPS
        cls, patches = y[:, :, :1], y[:, :, 1:]
        grid = patches.reshape(b, t, self.grid_size, self.grid_size, c)
        # (B, T, h, w, C)
        grid_pieces = [
            shift_along(grid[..., i * g : (i + 1) * g], offset, axis)
            for i, (offset, axis) in enumerate(_SPATIAL_SHIFTS)
        ]
        cls_pieces = [patches[..., : 4 * g].mean(dim=2, keepdim=True)]
        for j, offset in enumerate(_TEMPORAL_SHIFTS):
            lo, hi = (4 + j) * g, (5 + j) * g
            grid_pieces.append(shift_along(grid[..., lo:hi], offset, 1))
            cls_pieces.append(shift_along(cls[..., lo:hi], offset, 1))
        grid_pieces.append(grid[..., 6 * g :])
        cls_pieces.append(cls[..., 6 * g :])
        mixed_grid = torch.cat(grid_pieces, dim=-1).reshape(b, t, n - 1, c)
        mixed = torch.cat([torch.cat(cls_pieces, dim=-1), mixed_grid], dim=2)
        # (B, T, N, C)
        return self.proj_drop(self.proj(mixed * self.scale + self.bias))

    def macs(self, frames: int, tokens: int) -> Counter[str]:
        dim = self.fc.in_features
        rows = frames * tokens
        return Counter(mixer=rows * dim * dim + rows * dim, proj=rows * dim * dim)
