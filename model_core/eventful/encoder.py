"""The eventful spatial encoder: a model's per-frame ViT, run incrementally per session."""

from __future__ import annotations

from collections import Counter
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from model_core.layers import Block
from model_core.models import VideoTransformer

from .accounting import CostMeter, dense_frame_macs
from .block import block_step, check_block
from .gates import buffer_, gate_, map_rows
from .policy import BatchPlan
from .state import SessionState, StateSpec


class EventfulEncoder:
    """Runs the spatial encoder of ``model`` one frame per session with explicit state.

    The model must be a per-frame ViT (``factorized`` or ``vit_avg`` families, causal or not) or
    a causal TokShift, whose CLS shift reads the previous frame only: no temporal embedding,
    attention within the frame. Its weights are used as they are;
    the encoder holds no per-session data.

    Args:
        model: the video model; put in eval mode here.
        window: frames of per-frame features the state keeps for the temporal head.
        pin_class_token: select the class token at every gate whatever its error (see
            ``policy``); off, it competes with the patch tokens like any other.
    """

    def __init__(
        self, model: VideoTransformer, window: int | None = None, pin_class_token: bool = True
    ) -> None:
        if model.temporal_embed is not None:
            raise ValueError(f"family {model.family.name!r} adds a temporal embedding per frame")
        blocks = [cast(Block, block) for block in model.blocks]
        for block in blocks:
            check_block(block)
        if model.readout != "cls":
            # the state keeps each frame's class token only; a patch readout needs them all
            raise ValueError(f"the model reads out {model.readout!r}; eventful keeps the CLS token")
        self.model = model.eval()
        cfg = model.config
        self.spec = StateSpec(
            depth=cfg.depth,
            tokens=cfg.tokens_per_frame,
            dim=cfg.embed_dim,
            heads=cfg.num_heads,
            window=window or cfg.num_frames,
            cls_shift=any(block.residual_shift is not None for block in blocks),
            patch_dim=model.patch_embed.proj.in_channels * model.patch_embed.patch_size**2,
        )
        self.dense_macs: Counter[str] = dense_frame_macs(model)
        self.pinned = 1 if pin_class_token else 0  # the class token is token 0

    @property
    def device(self) -> torch.device:
        return self.model.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.cls_token.dtype

    @torch.no_grad()
    def forward_frame(
        self, frames: Tensor, state: SessionState, plan: BatchPlan
    ) -> tuple[Tensor, CostMeter]:
        """One frame per session through the encoder.

        Args:
            frames: ``(S, 3, H, W)`` frames, normalised as the model expects.
            state: the sessions' state; its encoder caches are updated in place.
            plan: what the gates select (fresh sessions recompute everything).

        Returns:
            The final normalised tokens ``(S, N, C)`` and the cost of the step per session.
        """
        if frames.ndim != 4:
            raise ValueError(f"expected (S, 3, H, W) frames, got shape {tuple(frames.shape)}")
        sessions = frames.shape[0]
        meter = CostMeter(sessions, self.spec.tokens)
        meter.add_dense(self.dense_macs)
        patch_tokens = self._embed_patches(frames, state, plan, meter)  # (sessions, patches, dim)
        model = self.model
        cls = model.cls_token.expand(sessions, -1, -1)
        x = torch.cat([cls, patch_tokens], dim=1) + model.pos_embed  # (sessions, tokens, dim)
        for block, layer in zip(model.blocks, state.layers, strict=True):
            x = block_step(cast(Block, block), x, layer, plan, meter)
        return model.norm(x), meter

    def _embed_patches(
        self, frames: Tensor, state: SessionState, plan: BatchPlan, meter: CostMeter
    ) -> Tensor:
        """This frame's patch embeddings ``(S, P, C)``, through the input gate.

        Sessions without an input threshold (and first frames) embed every patch; the others
        re-embed only the patches whose pixels moved more than their threshold since their last
        embedding and keep the rest from ``state.patch_tokens``. Either way the gate's reference
        and buffer are refreshed, so a session may switch its input gate on at any frame.
        """
        embed = self.model.patch_embed
        size = embed.patch_size
        patches = F.unfold(frames, size, stride=size).transpose(1, 2)  # (S, P, 3·size·size)
        count, pixels = patches.shape[1:]
        per_patch = pixels * embed.proj.out_channels
        gate_plan = plan.input_plan(count)
        if gate_plan.all_full:
            state.patch_ref.copy_(patches)
            state.patch_tokens.copy_(embed(frames))  # the model's own convolution
            meter.add("patch_embed", [count * per_patch] * frames.shape[0])
            return state.patch_tokens
        selection, rows = gate_(patches, state.patch_ref, gate_plan)
        weight = embed.proj.weight.reshape(embed.proj.out_channels, pixels)  # (C, 3·size·size)
        fresh = map_rows(lambda r: F.linear(r, weight, embed.proj.bias), rows, selection)
        meter.add("gate", [count * pixels if t is not None else 0 for t in plan.inputs])
        meter.add("patch_embed", [m * per_patch for m in selection.counts])
        return buffer_(state.patch_tokens, selection, fresh)
