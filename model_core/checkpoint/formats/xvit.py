"""The X-ViT release (1adrianb/video-transformers), a SlowFast checkpoint:
``{"model_state": {...}, "epoch": ..., "optimizer_state": ..., "cfg": "<YAML>"}`` (the
container is already removed) with the ViT under ``base_model.`` and the temporal-attention
head under ``consensus.``.

What the release's code does, and so what a faithful load needs:

- The release shifts keys and values along the head-major channel axis, which is vidrec's
  xvit with ``kv_layout="release"``; into a ``"per_head"`` model the weights still load, with
  a warning.
- With ``MODEL.DROPOUT_RATE > 0`` (0.5 in all three released configurations) the image head
  ``base_model.head`` becomes a dropout and the model builds a classifier ``new_fc`` that its
  forward never calls when ``XVIT.CONSENSUS_TYPE`` is ``"vit"``: the logits are
  ``consensus.mlp_head`` over the temporal encoder's CLS token. ``new_fc.*`` is therefore in
  every checkpoint and dropped here, reported as ignored. Without dropout the image head is a
  ``Linear`` that the forward does apply before the consensus; vidrec's model has no such
  layer, so ``base_model.head.*`` stays unexpected.
- Its ViT is always built with an 8-frame temporal embedding, which it adds to every group of
  8 consecutive frames; the key and value shift runs within groups of ``XVIT.NUM_SEGMENTS``
  frames; the consensus reads all ``DATA.NUM_FRAMES`` frames at once. The 16-frame Kinetics
  configurations (``NUM_SEGMENTS: 8``) are vidrec's ``segment_frames=8`` with
  ``temporal_embed_frames=8``; the SSv2 one (``NUM_SEGMENTS: 16``) is
  ``temporal_embed_frames=8`` alone. When the checkpoint's ``cfg`` says so, a model set up
  otherwise is warned about.
"""

from __future__ import annotations

import re
from typing import Any

from model_core.config import ModelConfig

from .base import Converted, Layout, Source, family_warnings, has_prefix, rename, rules

_RULES = rules(
    (r"base_model\.temp_embed", "temporal_embed"),
    (r"(base_model\.head\..+)", r"\1"),
    (r"base_model\.(.+)", r"\1"),
    (r"consensus\.(.+)", r"head.\1"),
)
_UNUSED_CLASSIFIER = re.compile(r"new_fc\.(weight|bias)")


def _is_xvit(source: Source) -> bool:
    return has_prefix(source, "consensus.") and has_prefix(source, "base_model.")


def cfg_value(cfg: str, section: str, key: str) -> str | None:
    """``section.key`` of a SlowFast ``cfg.dump()`` (YAML, two-space indents), or None.

    Only top-level sections and their direct keys are read, which is all the loader needs.
    """
    block = re.search(rf"^{re.escape(section)}:\n((?:[ ]+.*(?:\n|$))*)", cfg, re.MULTILINE)
    if block is None:
        return None
    value = re.search(rf"^  {re.escape(key)}:[ ]*(.+?)[ ]*$", block.group(1), re.MULTILINE)
    return value.group(1).strip("'\"") if value else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def release_settings(source: Source) -> dict[str, Any]:
    """The vidrec settings that reproduce the run that saved ``source``: ``num_frames`` and
    the ``options`` ``shift_div``, ``segment_frames`` and ``temporal_embed_frames``, as far as
    the checkpoint says (its ``cfg`` text and the temporal embedding's length)."""
    embed = source.state.get("base_model.temp_embed")
    held = int(embed.shape[1]) if embed is not None and embed.ndim == 4 else None
    cfg = source.extras.get("cfg")
    text = cfg if isinstance(cfg, str) else ""
    frames = _int(cfg_value(text, "DATA", "NUM_FRAMES"))
    segments = _int(cfg_value(text, "XVIT", "NUM_SEGMENTS"))
    shift_div = _int(cfg_value(text, "XVIT", "SHIFT_DIV"))
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if frames is not None:
        settings["num_frames"] = frames
        if held is not None:
            options["temporal_embed_frames"] = held if held < frames else None
        if segments is not None:
            options["segment_frames"] = segments if segments < frames else None
    if shift_div is not None:
        options["shift_div"] = shift_div
    if options:
        settings["options"] = options
    return settings


def _setting_warnings(settings: dict[str, Any], config: ModelConfig | None) -> list[str]:
    if config is None or config.family != "xvit":
        return []
    found = []
    if "num_frames" in settings and settings["num_frames"] != config.num_frames:
        found.append(f"num_frames={settings['num_frames']} (model: {config.num_frames})")
    for name, value in settings.get("options", {}).items():
        if config.options.get(name) != value:
            found.append(f"{name}={value!r} (model: {config.options.get(name)!r})")
    if not found:
        return []
    return [
        "the X-ViT release ran with "
        + ", ".join(found)
        + " by its cfg; build the model with those settings to compute what it computed"
    ]


def _convert(source: Source, config: ModelConfig | None) -> Converted:
    state = dict(source.state)
    ignored = [key for key in state if _UNUSED_CLASSIFIER.fullmatch(key)]
    for key in ignored:
        del state[key]
    converted = Converted(
        rename(state, _RULES),
        conversions=[
            "renamed base_model.* to the backbone, temp_embed to temporal_embed, "
            "consensus.* to head.*"
        ],
        warnings=family_warnings(config, "X-ViT release", "xvit", kv_layout="release"),
        ignored=ignored,
    )
    if ignored:
        converted.conversions.append(
            "dropped new_fc.* (the release's classifier for other consensus types: with its "
            "'vit' consensus the logits come from consensus.mlp_head and new_fc is never called)"
        )
    converted.warnings += _setting_warnings(release_settings(source), config)
    return converted


XVIT_RELEASE = Layout(
    "xvit-release",
    "X-ViT release, SlowFast format ({'model_state': ...} with base_model.* incl. temp_embed, "
    "consensus.cls_token, consensus.temporal_encoder.0.*, consensus.mlp_head.*, and the "
    "unused new_fc.* when trained with dropout)",
    _is_xvit,
    _convert,
)
