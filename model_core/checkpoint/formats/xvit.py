"""The X-ViT release, a SlowFast checkpoint: ``{"model_state": {...}}`` (the container is
already removed) with the ViT under ``base_model.`` and the temporal-attention head under
``consensus.``.

The release shifts keys and values along the head-major channel axis, which is vidrec's xvit
with ``kv_layout="release"``; into a ``"per_head"`` model the weights still load, with a
warning. ``base_model.head`` (present only when the release ran without dropout) is no part of
the X-ViT model and stays unexpected.
"""

from __future__ import annotations

from model_core.config import ModelConfig

from .base import Converted, Layout, Source, family_warnings, has_prefix, rename, rules

_RULES = rules(
    (r"base_model\.temp_embed", "temporal_embed"),
    (r"(base_model\.head\..+)", r"\1"),
    (r"base_model\.(.+)", r"\1"),
    (r"consensus\.(.+)", r"head.\1"),
)


def _is_xvit(source: Source) -> bool:
    return has_prefix(source, "consensus.") and has_prefix(source, "base_model.")


def _convert(source: Source, config: ModelConfig | None) -> Converted:
    return Converted(
        rename(source.state, _RULES),
        conversions=[
            "renamed base_model.* to the backbone, temp_embed to temporal_embed, "
            "consensus.* to head.*"
        ],
        warnings=family_warnings(config, "X-ViT release", "xvit", kv_layout="release"),
    )


XVIT_RELEASE = Layout(
    "xvit-release",
    "X-ViT release, SlowFast format ({'model_state': ...} with base_model.* incl. temp_embed, "
    "consensus.cls_token, consensus.temporal_encoder.0.*, consensus.mlp_head.*)",
    _is_xvit,
    _convert,
)
