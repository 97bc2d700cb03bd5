"""Image to patch tokens (timm name ``patch_embed.proj``)."""

from __future__ import annotations

from torch import Tensor, nn


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must divide by patch_size {patch_size}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"expected {self.img_size}x{self.img_size} frames, got {tuple(x.shape[-2:])}"
            )
        return self.proj(x).flatten(2).transpose(1, 2)  # (B·T, patches, C)

    def macs(self, frames: int, patches: int | None = None) -> int:
        """A convolution with stride = kernel is one linear map per patch."""
        per_patch = self.proj.in_channels * self.patch_size**2 * self.proj.out_channels
        return frames * (patches or self.num_patches) * per_patch
