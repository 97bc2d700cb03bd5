"""Which tokens attend to which: the token grouping that distinguishes per-frame, leap (LAPS)
and joint space-time attention. Each grouping maps ``(B, T, N, C)`` to ``(G, L, C)`` sequences
that attend internally, and back."""

from __future__ import annotations

from torch import Tensor


class FrameGrouping:
    """Each frame attends within itself: the image ViT's attention."""

    def group(self, x: Tensor) -> Tensor:
        b, t, n, c = x.shape
        return x.reshape(b * t, n, c)

    def ungroup(self, x: Tensor, frames: int) -> Tensor:
        bt, n, c = x.shape
        return x.reshape(bt // frames, frames, n, c)

    def attention_macs(self, frames: int, tokens: int, dim: int) -> int:
        """q·kᵀ and attn·v for one clip."""
        return 2 * frames * tokens * tokens * dim


class JointGrouping:
    """All ``T·N`` tokens of a clip attend jointly: the quadratic space-time baseline."""

    def group(self, x: Tensor) -> Tensor:
        b, t, n, c = x.shape
        return x.reshape(b, t * n, c)

    def ungroup(self, x: Tensor, frames: int) -> Tensor:
        b, tn, c = x.shape
        return x.reshape(b, frames, tn // frames, c)

    def attention_macs(self, frames: int, tokens: int, dim: int) -> int:
        return 2 * (frames * tokens) ** 2 * dim


class LeapPairGrouping:
    """LAPS leap attention: frame ``t`` and frame ``t + T / 2**level`` attend jointly over their
    ``2N`` tokens. For T=8, levels 1, 2, 3 give leaps 4, 2, 1."""

    def __init__(self, level: int) -> None:
        if level < 1:
            raise ValueError(f"leap level must be >= 1, got {level}")
        self.level = level

    def leap(self, frames: int) -> int:
        if frames % (2**self.level):
            raise ValueError(
                f"leap attention at level {self.level} needs the number of frames to divide "
                f"by {2**self.level}, got {frames}"
            )
        return frames // 2**self.level

    def group(self, x: Tensor) -> Tensor:
        b, t, n, c = x.shape
        leap = self.leap(t)
        x = x.reshape(b, t // (2 * leap), 2, leap, n, c)
        # (B, pair blocks, 2, leap, N, C) -> pair members side by side
        x = x.permute(0, 1, 3, 2, 4, 5)
        # (B, pair blocks, leap, 2, N, C)
        return x.reshape(b * t // 2, 2 * n, c)

    def ungroup(self, x: Tensor, frames: int) -> Tensor:
        pairs, two_n, c = x.shape
        b, n, leap = pairs * 2 // frames, two_n // 2, self.leap(frames)
        x = x.reshape(b, frames // (2 * leap), leap, 2, n, c)
        x = x.permute(0, 1, 3, 2, 4, 5)
        # (B, pair blocks, 2, leap, N, C)
        return x.reshape(b, frames, n, c)

    def attention_macs(self, frames: int, tokens: int, dim: int) -> int:
        # T/2 pairs of 2N tokens: 2·(T/2)·(2N)²·C = 2·(2TN²C), twice the per-frame cost.
        self.leap(frames)
        return 2 * (frames // 2) * (2 * tokens) ** 2 * dim


TokenGrouping = FrameGrouping | JointGrouping | LeapPairGrouping
