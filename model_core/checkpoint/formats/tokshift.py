"""The official TokShift releases (``module.base_model.*``; ``module.`` is already removed).

v1 builds its ViT from the ViT-pytorch port (``transformer.embeddings.*``,
``transformer.encoder.layer.{i}.*``) with separate query, key and value projections, which are
fused here into timm's ``attn.qkv`` as ``cat([q, k, v])`` along the output rows. Its blocks
shift the CLS token on the residual stream with fold_div 4: vidrec's ``tokshift`` with
``shift_div=4``. v2 is the same model on timm's ViT, so only the prefix goes.

v2 is the training code of VideoNetworks/LAPS-transformer (``main_tokshift.py``), which saves
its plain ViT, TokShift and ViT_LAPS nets alike: ``{"state_dict": {"module.base_model.<timm
names>"}, "epoch", "best_acc1", "optimizer", "scheduler"}``. LAPS's leap attention and periodic
shift add no weights, so the keys cannot tell the nets apart; the run folder the code writes
them into does, ``video_checkpoints/{NET}_{BACKBONE}_{dataset}_C{classes}_{T}x{rate}_E.._LR.._
B.._S{size}_D{fold_div}[_SLevel_s2_{levels}_s3_{levels}]/ckpt_e{N}.pth``. A file whose path
holds a ``ViT_LAPS_`` run name is the ``laps-release`` layout; its fold_div and s2 levels are
checked against the model's ``shift_div`` and ``levels``. A file with no run name in its path
could be any of the three, so it goes into a ``tokshift``, ``laps`` or ``vit_avg`` model
without a warning about the family.
"""

from __future__ import annotations

import re
from pathlib import Path

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
# LAPS-transformer's run folder name (utils/parser.py, get_store_name).
_RUN_NAME = re.compile(
    r"(?P<net>ViT_LAPS|TokShift|ViT)_(?P<backbone>vit_\w+?)_(?P<dataset>[A-Za-z0-9]+)"
    r"_C(?P<classes>\d+)_(?P<frames>\d+)x(?P<rate>\d+)_.*?_D(?P<fold>\d+)"
    r"(?:_SLevel_s2_(?P<s2>\d+(?:_\d+)*)_s3_(?P<s3>\d+(?:_\d+)*))?"
)
# The family each net of that code is in vidrec.
_NET_FAMILIES = {"ViT_LAPS": "laps", "TokShift": "tokshift", "ViT": "vit_avg"}
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


def run_name(source: Source) -> re.Match[str] | None:
    """The LAPS-transformer run name in the checkpoint's path (a folder, or the file itself)."""
    for part in reversed(source.path.parts):
        match = _RUN_NAME.fullmatch(Path(part).stem if part == source.path.name else part)
        if match:
            return match
    return None


def _run_warnings(run: re.Match[str], config: ModelConfig | None, layout: str) -> list[str]:
    """Family and settings the run name gives, against the model's."""
    family = _NET_FAMILIES[run["net"]]
    options: dict[str, object] = {}
    if family != "vit_avg":
        options["shift_div"] = int(run["fold"])
    if run["s2"]:
        options["levels"] = [int(level) for level in run["s2"].split("_")]
    warnings = family_warnings(config, layout, family, **options)
    frames = int(run["frames"])
    if config is not None and config.family == family and config.num_frames != frames:
        warnings.append(
            f"{layout} weights were trained on {frames}-frame clips; this model "
            f"has num_frames={config.num_frames}"
        )
    return warnings


def _convert_v2(source: Source, config: ModelConfig | None) -> Converted:
    converted = Converted(
        rename(source.state, _V2_RULES), conversions=["removed prefix 'base_model.'"]
    )
    run = run_name(source)
    if run is not None:
        converted.conversions.append(f"the run folder names the {run['net']} net")
        converted.warnings = _run_warnings(run, config, "TokShift v2")
    elif config is not None and config.family not in _NET_FAMILIES.values():
        converted.warnings.append(
            "TokShift v2 weights come from a ViT, TokShift or LAPS net (the file does not say "
            f"which); this model is {config.family!r} (the backbone loads, its temporal "
            "behaviour differs)"
        )
    elif config is not None:
        converted.conversions.append(
            "no run folder in the path names the net (ViT, TokShift and ViT_LAPS save the same "
            f"names): loaded as this model's {config.family!r}"
        )
    return converted


def _convert_laps(source: Source, config: ModelConfig | None) -> Converted:
    run = run_name(source)
    assert run is not None  # _is_laps matched it
    return Converted(
        rename(source.state, _V2_RULES),
        conversions=[
            "removed prefix 'base_model.'",
            f"the run folder names the ViT_LAPS net (fold_div {run['fold']}, "
            f"levels {run['s2'] or 'not given'})",
        ],
        warnings=_run_warnings(run, config, "LAPS release"),
    )


def _is_v1(source: Source) -> bool:
    return has_prefix(source, _V1_ROOT)


def _is_v2(source: Source) -> bool:
    return any(_V2_BACKBONE.fullmatch(key) for key in source.state)


def _is_laps(source: Source) -> bool:
    run = run_name(source) if _is_v2(source) else None
    return run is not None and run["net"] == "ViT_LAPS"


TOKSHIFT_V1 = Layout(
    "tokshift-v1",
    "TokShift release v1 (module.base_model.transformer.embeddings.*, "
    "...encoder.layer.{i}.attn.query|key|value|out, ffn.fc1|fc2, attention_norm, ffn_norm)",
    _is_v1,
    _convert_v1,
)

TOKSHIFT_V2 = Layout(
    "tokshift-v2",
    "TokShift release v2 and the LAPS-transformer code's other nets (timm names under "
    "module.base_model.)",
    _is_v2,
    _convert_v2,
)

LAPS_RELEASE = Layout(
    "laps-release",
    "LAPS release (VideoNetworks/LAPS-transformer, ViT_LAPS net): timm names under "
    "module.base_model., in a run folder named ViT_LAPS_..._D{fold_div}_SLevel_s2_...",
    _is_laps,
    _convert_laps,
)
