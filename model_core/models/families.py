"""The video-transformer families: which temporal operator each block gets, which head reads
the frames, and whether the family has a temporal position embedding.

Facts from the papers' official code (see docs/MODELS.md):

- ``tokshift``: only the CLS token moves; channels [0, C/4) read t+1 and [C/4, C/2) read t-1,
  on the residual stream before attention and before the MLP, in every block.
- ``laps``: leap attention over frame pairs (t, t + T/2^level) with per-block levels cycling
  [1, 2, 3, 1], and a periodic shift of the attention output (per head, d/4 channels read t+1
  and d/4 read t-1) before the output projection.
- ``xvit``: keys and values shift C/8 channels from t+1 and C/8 from t-1 (``shift_div=8``, the
  Kinetics setting; 4 for SSv2). ``kv_layout="release"`` slices the head-major channel axis as
  the official release does (so only the first heads mix time); ``"per_head"`` splits inside
  each head as the paper describes. Plus a zero-initialised temporal embedding and the
  temporal-attention head.
- ``vast``: the attention-free affine-shift mixer (``layers/affine_shift.py`` documents it).
- ``factorized``: a plain per-frame ViT, then a temporal transformer over the CLS features.
- ``joint``: full attention over all T·N tokens, with a learned temporal embedding (without one
  it could not tell the order of frames).
- ``vit_avg``: the image baseline: per-frame ViT, logits averaged over frames.

Causal layouts (``causal=True``; tokshift, xvit, factorized): every shift drops its read from
t+1, and those channels keep the current frame, so only the t-1 channels carry time. That keeps
the channel positions of the non-causal twin (weights transfer) and means a stream needs only
the previous frame as cache. Heads become causal as described in ``heads.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from model_core.layers import (
    AffineShiftMixer,
    Attention,
    JointGrouping,
    LeapPairGrouping,
    TemporalShift,
)


@dataclass(frozen=True)
class BlockContext:
    """What an operator builder may look at when it makes the parts of block ``index``."""

    dim: int
    num_heads: int
    qkv_bias: bool
    index: int
    depth: int
    grid_size: int
    causal: bool
    drop: float
    options: Mapping[str, Any]


@dataclass(frozen=True)
class BlockParts:
    """The swappable parts of one block: its token mixer and an optional residual shift."""

    mixer: nn.Module
    residual_shift: TemporalShift | None = None


HeadKind = Literal["frame_average", "temporal_attention", "temporal_transformer"]
TemporalEmbed = Literal["none", "zeros", "normal"]


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    build_block: Callable[[BlockContext], BlockParts]
    head: HeadKind
    temporal_embed: TemporalEmbed = "none"
    supports_causal: bool = False
    default_options: Mapping[str, Any] | None = None


def _attention(ctx: BlockContext, **kwargs: Any) -> Attention:
    return Attention(ctx.dim, ctx.num_heads, ctx.qkv_bias, proj_drop=ctx.drop, **kwargs)


def _plain(ctx: BlockContext) -> BlockParts:
    return BlockParts(_attention(ctx))


def _tokshift(ctx: BlockContext) -> BlockParts:
    shift = TemporalShift.fold(ctx.dim, ctx.options["shift_div"], cls_only=True, causal=ctx.causal)
    return BlockParts(_attention(ctx), residual_shift=shift)


def _laps(ctx: BlockContext) -> BlockParts:
    levels: list[int] = list(ctx.options["levels"])
    out_shift = TemporalShift.fold(ctx.dim, ctx.options["shift_div"], groups=ctx.num_heads)
    grouping = LeapPairGrouping(levels[ctx.index % len(levels)])
    return BlockParts(_attention(ctx, grouping=grouping, out_shift=out_shift))


def _xvit(ctx: BlockContext) -> BlockParts:
    layout = ctx.options["kv_layout"]
    if layout not in ("release", "per_head"):
        raise ValueError(f"xvit kv_layout must be 'release' or 'per_head', got {layout!r}")
    groups = ctx.num_heads if layout == "per_head" else 1
    kv_shift = TemporalShift.fold(
        ctx.dim, ctx.options["shift_div"], groups=groups, causal=ctx.causal
    )
    return BlockParts(_attention(ctx, kv_shift=kv_shift))


def _vast(ctx: BlockContext) -> BlockParts:
    return BlockParts(AffineShiftMixer(ctx.dim, ctx.grid_size, proj_drop=ctx.drop))


def _joint(ctx: BlockContext) -> BlockParts:
    return BlockParts(_attention(ctx, grouping=JointGrouping()))


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("vit_avg", "per-frame ViT, logits averaged over frames", _plain, "frame_average"),
        Family(
            "tokshift",
            "TokShift: zero-parameter CLS-token shift on the residual stream",
            _tokshift,
            "frame_average",
            supports_causal=True,
            default_options={"shift_div": 4},
        ),
        Family(
            "laps",
            "LAPS: leap attention over frame pairs + periodic per-head shift",
            _laps,
            "frame_average",
            default_options={"levels": [1, 2, 3, 1], "shift_div": 4},
        ),
        Family(
            "xvit",
            "X-ViT: space-time mixing of keys and values, temporal-attention head",
            _xvit,
            "temporal_attention",
            temporal_embed="zeros",
            supports_causal=True,
            default_options={"shift_div": 8, "kv_layout": "release", "head_depth": 1},
        ),
        Family(
            "vast",
            "VAST: attention-free affine-shift blocks",
            _vast,
            "frame_average",
            # Max pooling: the CLS token's mean over 49 patches dilutes what the actor's patch
            # knows (docs/MODELS.md, "VAST's readout").
            default_options={"readout": "patch_max"},
        ),
        Family(
            "factorized",
            "factorised: per-frame ViT + temporal transformer over per-frame CLS features",
            _plain,
            "temporal_transformer",
            supports_causal=True,
            default_options={"head_depth": 4},
        ),
        Family(
            "joint",
            "joint space-time attention over all T·N tokens (quadratic baseline)",
            _joint,
            "frame_average",
            temporal_embed="normal",
        ),
    )
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from None
