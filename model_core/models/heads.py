"""Heads that turn per-frame CLS features ``(B, T, C)`` into clip logits ``(B, classes)``, or
into per-frame logits ``(B, T, classes)`` for causal models (the logits at ``t`` see frames
``<= t`` only)."""

from __future__ import annotations

from collections import Counter
from typing import cast

import torch
from torch import Tensor, nn

from model_core.layers import Attention, Block


class FrameAverageHead(nn.Linear):
    """A linear classifier per frame whose logits are averaged over frames (TSN consensus).

    It *is* an ``nn.Linear`` so its weights keep timm's ``head.weight`` / ``head.bias`` names.
    Causal per-frame output is the running mean up to each frame.
    """

    def __init__(self, dim: int, num_classes: int, causal: bool = False) -> None:
        super().__init__(dim, num_classes)
        self.causal = causal

    def frame_features(self, x: Tensor) -> Tensor:
        """The per-frame features the classifier reads: the CLS features themselves."""
        return x

    def forward(self, x: Tensor, per_frame: bool = False) -> Tensor:
        logits = super().forward(x)  # (B, T, classes)
        if not per_frame:
            return logits.mean(dim=1)
        counts = torch.arange(1, logits.shape[1] + 1, device=x.device, dtype=logits.dtype)
        return logits.cumsum(dim=1) / counts[None, :, None]

    def macs(self, frames: int) -> Counter[str]:
        return Counter(head=frames * self.in_features * self.out_features)


def _sequence_block_macs(blocks: nn.Sequential | nn.ModuleList, length: int) -> Counter[str]:
    total: Counter[str] = Counter()
    for block in blocks:
        for part, macs in cast(Block, block).macs(1, length).items():
            total[f"temporal_{part}"] += macs
    return total


class TemporalAttentionHead(nn.Module):
    """X-ViT's temporal-attention head: a learned CLS and the per-frame CLS features pass one
    transformer block (no position embedding, qkv without bias, LayerNorm eps 1e-5, as in the
    release), then LN → Linear → GELU → Dropout → Linear on the learned CLS.

    Causal: the block's attention is masked so position ``t`` sees the CLS and frames
    ``<= t``; each frame's logits come from its own position.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_classes: int,
        mlp_dim: int | None = None,
        depth: int = 1,
        drop: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        mlp_dim = mlp_dim or dim
        self.causal = causal
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_encoder = nn.Sequential(
            *[
                Block(
                    dim,
                    num_heads,
                    qkv_bias=False,
                    norm_eps=1e-5,
                    mixer=Attention(dim, num_heads, qkv_bias=False, causal=causal),
                )
                for _ in range(depth)
            ]
        )
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(drop),
            nn.Linear(mlp_dim, num_classes),
        )

    def _encode(self, x: Tensor) -> Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        # (B, 1 + T, C), seen by the blocks as one "frame" of 1 + T tokens
        return cast(Tensor, self.temporal_encoder(x.unsqueeze(1)).squeeze(1))

    def frame_features(self, x: Tensor) -> Tensor:
        """``(B, T, C)``: each frame's position after the temporal block."""
        return self._encode(x)[:, 1:]

    def forward(self, x: Tensor, per_frame: bool = False) -> Tensor:
        x = self._encode(x)
        if per_frame:
            return self.mlp_head(x[:, 1:])
        return self.mlp_head(x[:, -1] if self.causal else x[:, 0])

    def macs(self, frames: int) -> Counter[str]:
        total = _sequence_block_macs(self.temporal_encoder, frames + 1)
        fc1, fc2 = cast(nn.Linear, self.mlp_head[1]), cast(nn.Linear, self.mlp_head[4])
        # One clip answer: the MLP runs on one position.
        total["head"] += fc1.in_features * fc1.out_features + fc2.in_features * fc2.out_features
        return total


class TemporalTransformerHead(nn.Module):
    """The temporal encoder of a factorised (ViViT model 2 style) network: a learned temporal
    position embedding, ``depth`` transformer blocks over the per-frame CLS features, a final
    LayerNorm and a linear classifier. Non-causal pools by averaging; causal masks attention and
    classifies each position (the clip answer is the last position)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_classes: int,
        num_frames: int,
        depth: int = 4,
        drop: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.num_frames = num_frames
        self.pos_embed = nn.Parameter(torch.zeros(1, num_frames, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(
            *[
                Block(dim, num_heads, mixer=Attention(dim, num_heads, causal=causal))
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes)

    def frame_features(self, x: Tensor) -> Tensor:
        """``(B, T, C)``: the temporal encoder's normalised output at every frame."""
        frames = x.shape[1]
        if frames > self.num_frames:
            raise ValueError(f"temporal encoder holds {self.num_frames} frames, got {frames}")
        x = x + self.pos_embed[:, :frames]
        return cast(Tensor, self.norm(self.blocks(x.unsqueeze(1)).squeeze(1)))

    def forward(self, x: Tensor, per_frame: bool = False) -> Tensor:
        x = self.frame_features(x)  # (B, T, C)
        if per_frame:
            return self.fc(self.drop(x))
        pooled = x[:, -1] if self.causal else x.mean(dim=1)
        return self.fc(self.drop(pooled))

    def macs(self, frames: int) -> Counter[str]:
        total = _sequence_block_macs(self.blocks, frames)
        total["head"] += self.fc.in_features * self.fc.out_features
        return total


TemporalHead = FrameAverageHead | TemporalAttentionHead | TemporalTransformerHead
