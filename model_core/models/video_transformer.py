"""One video transformer for every family: a ViT backbone over ``(B, T, N, C)`` tokens whose
blocks get the family's temporal operator, and a head over one feature per frame: the CLS
token, or for ``readout="patch_max"`` (VAST's default) the channel-wise maximum over the patch
tokens.

State-dict names match timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.{i}.norm1|attn.qkv|attn.proj|norm2|mlp.fc1|mlp.fc2``, ``norm``,
``head``), so image-ViT checkpoints load into any family.

Two options, for any family, reproduce how released models run clips longer than they were
built for (the X-ViT release's 16-frame configurations; docs/CHECKPOINTS.md):

- ``segment_frames=S``: the blocks see the clip as consecutive segments of ``S`` frames, so
  temporal mixing (shifts, leap pairs, joint attention) stops at segment edges as it does at
  clip edges; the head still reads every frame of the clip at once.
- ``temporal_embed_frames=E``: the temporal embedding holds ``E`` frames and a clip of a
  multiple of ``E`` frames reuses it cyclically (frame ``t`` gets entry ``t mod E``).

Absent (or None), the whole clip is one segment and the embedding holds ``num_frames`` frames.
"""

from __future__ import annotations

from collections import Counter
from typing import cast

import torch
from torch import Tensor, nn

from model_core.config import ModelConfig
from model_core.layers import Block, PatchEmbed

from .families import BlockContext, Family, get_family
from .heads import FrameAverageHead, TemporalAttentionHead, TemporalHead, TemporalTransformerHead

# What the head reads of each frame's final tokens: the CLS token, or the maximum of every
# channel over the patch tokens (global max pooling, for a family whose CLS token cannot single
# the actor out: see ``families``).
READOUTS = ("cls", "patch_max")


class VideoTransformer(nn.Module):
    """Input ``(B, T, 3, H, W)`` normalised frames; output logits ``(B, num_classes)``.

    ``forward_features`` gives the final tokens ``(B, T, N, C)``, ``forward_head`` the logits;
    causal models also give per-frame logits ``(B, T, classes)`` with ``per_frame=True``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        family = get_family(config.family)
        if config.causal and not family.supports_causal:
            raise ValueError(f"family {family.name!r} has no causal variant")
        options = {**(family.default_options or {}), **config.options}
        config = config.replace(options=options)
        self.config = config
        self.readout: str = options.get("readout", "cls")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        self.family: Family = family
        self.segment_frames = _frames_option(options, "segment_frames", config.num_frames)
        if self.segment_frames is not None and config.causal:
            raise ValueError("segment_frames is for clip models; a causal model streams")
        embed_frames = _frames_option(options, "temporal_embed_frames", config.num_frames)
        if embed_frames is not None and family.temporal_embed == "none":
            raise ValueError(f"family {family.name!r} has no temporal embedding to size")
        # A length of its own is reused cyclically over longer clips; the default is not.
        self.cyclic_temporal_embed = embed_frames is not None
        dim = config.embed_dim

        self.patch_embed = PatchEmbed(config.img_size, config.patch_size, config.in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.tokens_per_frame, dim))
        self.temporal_embed: nn.Parameter | None = None
        if family.temporal_embed != "none":
            length = embed_frames or config.num_frames
            self.temporal_embed = nn.Parameter(torch.zeros(1, length, 1, dim))
            if family.temporal_embed == "normal":
                nn.init.trunc_normal_(self.temporal_embed, std=0.02)
        self.pos_drop = nn.Dropout(config.drop_rate)

        # Stochastic depth grows linearly with depth, as in timm.
        drop_path = [
            config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)
        ]
        blocks = []
        for index in range(config.depth):
            parts = family.build_block(
                BlockContext(
                    dim=dim,
                    num_heads=config.num_heads,
                    qkv_bias=config.qkv_bias,
                    index=index,
                    depth=config.depth,
                    grid_size=config.grid_size,
                    causal=config.causal,
                    drop=config.drop_rate,
                    options=options,
                )
            )
            blocks.append(
                Block(
                    dim,
                    config.num_heads,
                    config.mlp_ratio,
                    config.qkv_bias,
                    mixer=parts.mixer,
                    residual_shift=parts.residual_shift,
                    drop=config.drop_rate,
                    drop_path=drop_path[index],
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head: TemporalHead = self._make_head(config, family, options)
        self._init_weights()

    @staticmethod
    def _make_head(config: ModelConfig, family: Family, options: dict) -> TemporalHead:
        dim, classes = config.embed_dim, config.num_classes
        if family.head == "frame_average":
            return FrameAverageHead(dim, classes, causal=config.causal)
        if family.head == "temporal_attention":
            return TemporalAttentionHead(
                dim,
                config.num_heads,
                classes,
                mlp_dim=options.get("head_mlp_dim"),
                depth=options["head_depth"],
                drop=config.drop_rate,
                causal=config.causal,
            )
        return TemporalTransformerHead(
            dim,
            config.num_heads,
            classes,
            config.num_frames,
            depth=options["head_depth"],
            drop=config.drop_rate,
            causal=config.causal,
        )

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def embed_frames(self, x: Tensor) -> Tensor:
        """Patch, CLS and position embeddings of every frame: ``(B, T, 3, H, W)`` to
        ``(B, T, N, C)``, before the temporal embedding."""
        if x.ndim != 5:
            raise ValueError(f"expected (B, T, C, H, W) input, got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        tokens = self.patch_embed(x.flatten(0, 1))  # (B·T, patches, C)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed  # (B·T, N, C)
        return tokens.reshape(b, t, *tokens.shape[1:])

    def forward_features(self, x: Tensor) -> Tensor:
        tokens = self.embed_frames(x)
        b, frames = tokens.shape[:2]
        if self.temporal_embed is not None:
            tokens = tokens + self._temporal_embedding(frames)
        tokens = self.pos_drop(tokens)
        segment = self._segment_length(frames)
        tokens = tokens.reshape(b * frames // segment, segment, *tokens.shape[2:])
        # (B·S, T/S, N, C): the blocks mix time within a segment only
        for block in self.blocks:
            tokens = block(tokens)
        tokens = tokens.reshape(b, frames, *tokens.shape[2:])  # (B, T, N, C)
        return self.norm(tokens)

    def _temporal_embedding(self, frames: int) -> Tensor:
        """``(1, frames, 1, C)``: the embedding's first ``frames`` entries, or, for a cyclic
        one, the embedding repeated over a clip of a multiple of its length."""
        assert self.temporal_embed is not None
        held = self.temporal_embed.shape[1]
        if frames <= held:
            return self.temporal_embed[:, :frames]
        if self.cyclic_temporal_embed and frames % held == 0:
            return self.temporal_embed.repeat(1, frames // held, 1, 1)
        hint = (
            f" (a cyclic embedding needs a multiple of {held})"
            if self.cyclic_temporal_embed
            else " (options temporal_embed_frames reuses it cyclically over longer clips)"
        )
        raise ValueError(f"model holds {held} frames of temporal embedding, got {frames}" + hint)

    def _segment_length(self, frames: int) -> int:
        """How many consecutive frames the blocks see together (``segment_frames``)."""
        segment = self.segment_frames
        if segment is None or frames <= segment:
            return frames
        if frames % segment:
            raise ValueError(
                f"the model runs segments of {segment} frames (segment_frames); "
                f"{frames} frames is not a multiple"
            )
        return segment

    def forward_head(self, tokens: Tensor, per_frame: bool = False) -> Tensor:
        """Logits from final tokens; ``per_frame`` (causal models only) gives ``(B, T, K)``
        where the logits at ``t`` depend on frames ``<= t`` only."""
        if per_frame and not self.config.causal:
            raise ValueError("per-frame outputs are defined for causal models only")
        return self.head(self.head_drop(self.frame_readout(tokens)), per_frame=per_frame)

    def frame_readout(self, tokens: Tensor) -> Tensor:
        """``(B, T, C)``: the feature of each frame that the head reads (``READOUTS``)."""
        if self.readout == "patch_max":
            return tokens[:, :, 1:].amax(dim=2)
        return tokens[:, :, 0]

    def forward_frame_features(self, tokens: Tensor) -> Tensor:
        """``(B, T, C)``: what the head makes of each frame after its own temporal mixing (the
        readout itself for frame-averaging heads); training probes read it."""
        return self.head.frame_features(self.frame_readout(tokens))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_per_frame(self, x: Tensor) -> Tensor:
        """Causal models: the streaming answer after each frame, ``(B, T, classes)``."""
        return self.forward_head(self.forward_features(x), per_frame=True)

    def macs(self, num_frames: int | None = None, img_size: int | None = None) -> Counter[str]:
        """Multiply-accumulates of one clip, by part (analytic; MAC = 1 operation)."""
        frames = num_frames or self.config.num_frames
        grid = (img_size or self.config.img_size) // self.config.patch_size
        tokens = 1 + grid * grid
        total: Counter[str] = Counter(patch_embed=self.patch_embed.macs(frames, grid * grid))
        segment = self._segment_length(frames)
        for block in self.blocks:
            per_segment = cast(Block, block).macs(segment, tokens)
            total.update({part: n * (frames // segment) for part, n in per_segment.items()})
        total.update(self.head.macs(frames))
        return total


def _frames_option(options: dict, name: str, num_frames: int) -> int | None:
    """A positive frame count from ``options[name]``, or None when absent."""
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of frames, got {value!r}")
    if num_frames % value:
        raise ValueError(f"{name}={value} does not divide num_frames={num_frames}")
    return value
