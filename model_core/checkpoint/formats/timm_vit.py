"""timm ``VisionTransformer`` state dicts, and vidrec's own plain state dicts.

vidrec's backbone uses timm's names, so a timm ViT needs no renaming: it loads into every
family, and what a family adds (a temporal embedding, a temporal head, VAST's affine
parameters) is reported missing. A ``torch.save(model.state_dict())`` of a vidrec model has the
same names plus those additions; it is told apart as ``vidrec-state-dict`` so the report says
what the file really is.
"""

from __future__ import annotations

import re

from model_core.config import ModelConfig

from .base import Converted, Layout, Source

_BACKBONE_KEY = re.compile(
    r"patch_embed\.proj\.weight"
    r"|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)"
)
# Names only vidrec models have: timm's ViT never carries them.
_VIDREC_ONLY_KEY = re.compile(
    r"temporal_embed"
    r"|head\.(cls_token|pos_embed|temporal_encoder\..+|mlp_head\..+|blocks\..+|norm\..+|fc\..+)"
    r"|blocks\.\d+\.attn\.(fc\.weight|fc\.bias|scale|bias)"
)


def _is_vit(source: Source) -> bool:
    return any(_BACKBONE_KEY.fullmatch(key) for key in source.state)


def _is_vidrec(source: Source) -> bool:
    return _is_vit(source) and any(_VIDREC_ONLY_KEY.fullmatch(key) for key in source.state)


def _identity(source: Source, config: ModelConfig | None) -> Converted:
    return Converted(dict(source.state))


TIMM_VIT = Layout(
    "timm-vit",
    "timm VisionTransformer state dict (patch_embed.proj, cls_token, pos_embed, blocks.{i}.*, "
    "norm, head), optionally under 'module.' / 'model.'",
    _is_vit,
    _identity,
)

VIDREC_STATE_DICT = Layout(
    "vidrec-state-dict",
    "a vidrec model's own state_dict() (timm names plus temporal_embed, temporal heads, "
    "VAST mixers)",
    _is_vidrec,
    _identity,
)
