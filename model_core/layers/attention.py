"""Multi-head self-attention with swappable temporal parts. State-dict names follow timm
(``qkv``, ``proj``), so image-ViT weights load into every attention variant."""

from __future__ import annotations

from collections import Counter

import torch.nn.functional as F
from torch import Tensor, nn

from .grouping import FrameGrouping, TokenGrouping
from .shift import TemporalShift


class Attention(nn.Module):
    """Attention over ``(B, T, N, C)`` tokens.

    Args:
        dim: channels.
        num_heads: heads; ``dim`` must divide by it.
        qkv_bias: bias on the fused qkv projection.
        grouping: which tokens attend jointly (per frame, leap pairs, the whole clip).
        kv_shift: X-ViT space-time mixing: a shift applied to keys and values only.
        out_shift: LAPS periodic shift: applied to the attention output, before ``proj``.
        causal: token ``i`` attends to tokens ``<= i`` only (temporal encoders of streams).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        *,
        grouping: TokenGrouping | None = None,
        kv_shift: TemporalShift | None = None,
        out_shift: TemporalShift | None = None,
        causal: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must divide by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.grouping: TokenGrouping = grouping or FrameGrouping()
        self.causal = causal
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.kv_shift = kv_shift
        self.out_shift = out_shift
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        frames, channels = x.shape[1], x.shape[3]
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, T, N, C), head-major channels
        if self.kv_shift is not None:
            k, v = self.kv_shift(k), self.kv_shift(v)
        q, k, v = (self._split_heads(self.grouping.group(t)) for t in (q, k, v))
        # (G, heads, L, C / heads)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, is_causal=self.causal
        )
        groups, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(groups, length, channels)
        out = self.grouping.ungroup(out, frames)  # (B, T, N, C)
        if self.out_shift is not None:
            out = self.out_shift(out)
        return self.proj_drop(self.proj(out))

    def _split_heads(self, x: Tensor) -> Tensor:
        g, length, _ = x.shape
        return x.reshape(g, length, self.num_heads, self.head_dim).transpose(1, 2)

    def macs(self, frames: int, tokens: int) -> Counter[str]:
        dim = self.proj.in_features
        rows = frames * tokens
        return Counter(
            qkv=rows * dim * 3 * dim,
            attention=self.grouping.attention_macs(frames, tokens, dim),
            proj=rows * dim * dim,
        )
