"""The official TokShift releases (``module.base_model.*``; ``module.`` is already removed).

v1 builds its ViT from the ViT-pytorch port (``transformer.embeddings.*``,
``transformer.encoder.layer.{i}.*``) with separate query, key and value projections, which are
fused here into timm's ``attn.qkv`` as ``cat([q, k, v])`` along the output rows. Its blocks
shift the CLS token on the residual stream with fold_div 4: vidrec's ``tokshift`` with
``shift_div=4``. v2 is the same model on timm's ViT, so only the prefix goes.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from model_core.config import ModelConfig

from .base import Converted, Layout, Source, family_warnings, has_prefix, rename, rules

_V1_ROOT = "base_model.transformer."

_EMB = r"base_model\.transformer\.embeddings\."
_LAYER = r"base_model\.transformer\.encoder\.layer\.(\d+)\."
_V1_RULES = rules(
    (_EMB + r"patch_embeddings\.(weight|bias)", r"patch_embed.proj.\1"),
    (_EMB + r"position_embeddings", "pos_embed"),
    (_EMB + r"cls_token", "cls_token"),
    (_LAYER + r"attention_norm\.(.+)", r"blocks.\1.norm1.\2"),
    (_LAYER + r"ffn_norm\.(.+)", r"blocks.\1.norm2.\2"),
    (_LAYER + r"ffn\.fc([12])\.(.+)", r"blocks.\1.mlp.fc\2.\3"),
    (_LAYER + r"attn\.out\.(.+)", r"blocks.\1.attn.proj.\2"),
    (r"base_model\.transformer\.encoder\.encoder_norm\.(.+)", r"norm.\1"),
    (r"base_model\.head\.(weight|bias)", r"head.\1"),
)
_V1_QKV = re.compile(_LAYER + r"attn\.(query|key|value)\.(weight|bias)")
_V2_RULES = rules((r"base_model\.(.+)", r"\1"))
_V2_BACKBONE = re.compile(r"base_model\.(patch_embed\.proj\.weight|blocks\.\d+\.attn\.qkv\.weight)")


def _fuse_qkv(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], int]:
    """Replaces complete query/key/value triples by ``blocks.{i}.attn.qkv``; an incomplete
    triple keeps its source names, so it is reported rather than half-loaded."""
    parts: dict[tuple[str, str], dict[str, str]] = {}
    for key in state:
        match = _V1_QKV.fullmatch(key)
        if match:
            layer, role, kind = match.groups()
            parts.setdefault((layer, kind), {})[role] = key
    fused = 0
    for (layer, kind), names in parts.items():
        if len(names) < 3:
            continue
        q, k, v = (state.pop(names[role]) for role in ("query", "key", "value"))
        state[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([q, k, v], dim=0)
        fused += 1
    return state, fused


def _convert_v1(source: Source, config: ModelConfig | None) -> Converted:
    state, fused = _fuse_qkv(rename(source.state, _V1_RULES))
    return Converted(
        state,
        conversions=[
            "renamed ViT-pytorch keys (transformer.embeddings / encoder.layer) to timm names",
            f"fused attn.query/key/value into attn.qkv ({fused} weight and bias tensors)",
        ],
        warnings=family_warnings(config, "TokShift v1", "tokshift", shift_div=4),
    )


def _convert_v2(source: Source, config: ModelConfig | None) -> Converted:
    return Converted(
        rename(source.state, _V2_RULES),
        conversions=["removed prefix 'base_model.'"],
        warnings=family_warnings(config, "TokShift v2", "tokshift"),
    )


def _is_v1(source: Source) -> bool:
    return has_prefix(source, _V1_ROOT)


def _is_v2(source: Source) -> bool:
    return any(_V2_BACKBONE.fullmatch(key) for key in source.state)


TOKSHIFT_V1 = Layout(
    "tokshift-v1",
    "TokShift release v1 (module.base_model.transformer.embeddings.*, "
    "...encoder.layer.{i}.attn.query|key|value|out, ffn.fc1|fc2, attention_norm, ffn_norm)",
    _is_v1,
    _convert_v1,
)

TOKSHIFT_V2 = Layout(
    "tokshift-v2",
    "TokShift release v2 (timm names under module.base_model.)",
    _is_v2,
    _convert_v2,
)
