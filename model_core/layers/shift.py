"""Zero-padded channel shifts along the frame axis: the parameter-free temporal operators of
TokShift, LAPS and X-ViT (and the temporal part of VAST).

Every tensor here is laid out ``(B, T, N, C)``: batch, frames, tokens per frame, channels.
A shift by ``offset`` makes frame ``t`` read frame ``t + offset``; frames that would read past
either edge of the clip read zeros, as in every reference implementation (nothing wraps around).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def shift_along(x: Tensor, offset: int, dim: int) -> Tensor:
    """Returns ``out`` with ``out[..., i, ...] = x[..., i + offset, ...]`` along ``dim``, zero
    where ``i + offset`` falls outside the axis."""
    if offset == 0:
        return x
    size = x.shape[dim]
    if abs(offset) >= size:
        return torch.zeros_like(x)
    pad_shape = list(x.shape)
    pad_shape[dim] = abs(offset)
    pad = x.new_zeros(pad_shape)
    if offset > 0:
        return torch.cat([x.narrow(dim, offset, size - offset), pad], dim=dim)
    return torch.cat([pad, x.narrow(dim, 0, size + offset)], dim=dim)


def shift_frames(x: Tensor, offset: int) -> Tensor:
    """Returns ``out`` with ``out[:, t] = x[:, t + offset]``, zero outside ``[0, T)``."""
    return shift_along(x, offset, dim=1)


@dataclass(frozen=True)
class ShiftSegment:
    """Channels ``[start, stop)`` of every channel group read frame ``t + offset``."""

    start: int
    stop: int
    offset: int


class TemporalShift(nn.Module):
    """Shifts fixed channel segments along time; the rest of the channels stay in place.

    Args:
        channels: size of the channel axis.
        segments: what moves, indexed inside one channel group.
        groups: the channel axis is viewed as ``(groups, channels // groups)`` and the same
            segments move in every group. ``groups=num_heads`` gives LAPS' per-head pattern.
        cls_only: shift only token 0 (the CLS token), as TokShift does.
        causal: drop the segments that read the future (``offset > 0``). Their channels then
            keep the current frame, so a causal model sees the same channel layout as its
            non-causal twin and only the future slot goes quiet.
    """

    def __init__(
        self,
        channels: int,
        segments: Sequence[ShiftSegment],
        *,
        groups: int = 1,
        cls_only: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"channels ({channels}) must divide into {groups} groups")
        group_width = channels // groups
        kept = sorted((s for s in segments if not (causal and s.offset > 0)), key=lambda s: s.start)
        cursor = 0
        for seg in kept:
            if seg.start < cursor or seg.stop > group_width or seg.start >= seg.stop:
                raise ValueError(f"bad or overlapping shift segment {seg} in width {group_width}")
            cursor = seg.stop
        self.channels = channels
        self.groups = groups
        self.cls_only = cls_only
        self.causal = causal
        self.segments: tuple[ShiftSegment, ...] = tuple(kept)

    @classmethod
    def fold(
        cls,
        channels: int,
        fold_div: int,
        *,
        groups: int = 1,
        cls_only: bool = False,
        causal: bool = False,
    ) -> TemporalShift:
        """The layout all three papers use: in each group of width ``w``, channels
        ``[0, w/fold_div)`` read ``t+1`` and ``[w/fold_div, 2w/fold_div)`` read ``t-1``.
        ``fold_div=0`` shifts nothing (the operator switched off)."""
        if fold_div < 0:
            raise ValueError(f"fold_div must be >= 0, got {fold_div}")
        fold = channels // groups // fold_div if fold_div else 0
        if fold_div and fold == 0:
            raise ValueError(f"fold_div {fold_div} leaves no channel to shift in {channels}")
        segments = [ShiftSegment(0, fold, +1), ShiftSegment(fold, 2 * fold, -1)] if fold else []
        return cls(channels, segments, groups=groups, cls_only=cls_only, causal=causal)

    def forward(self, x: Tensor) -> Tensor:
        if not self.segments:
            return x
        tokens = x[:, :, :1] if self.cls_only else x
        b, t, n, c = tokens.shape
        grouped = tokens.reshape(b, t, n, self.groups, c // self.groups)
        # (B, T, N, groups, channels / groups)
        pieces: list[Tensor] = []
        cursor = 0
        for seg in self.segments:
            if seg.start > cursor:
                pieces.append(grouped[..., cursor : seg.start])
            pieces.append(shift_frames(grouped[..., seg.start : seg.stop], seg.offset))
            cursor = seg.stop
        if cursor < grouped.shape[-1]:
            pieces.append(grouped[..., cursor:])
        shifted = torch.cat(pieces, dim=-1).reshape(b, t, n, c)
        if self.cls_only:
            return torch.cat([shifted, x[:, :, 1:]], dim=2)
        return shifted

    def extra_repr(self) -> str:
        segs = ", ".join(f"[{s.start}:{s.stop}]<-t{s.offset:+d}" for s in self.segments)
        return f"groups={self.groups}, cls_only={self.cls_only}, causal={self.causal}, {segs}"
