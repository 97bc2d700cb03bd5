"""Fitting converted image-ViT tensors to the target model, whatever layout they came from.

Two adaptations, each applied only where the model asks for it:

- **Position embedding of another patch grid** (another image size): ``pos_embed`` is resampled
  bicubically to the model's grid, the CLS embedding kept (``resample_pos_embed``).
- **VAST from an attention ViT**: VAST's affine-shift mixer has ``attn.fc`` where a ViT has
  ``attn.qkv``. ``fc`` plays the part of the value projection, so it takes the value rows
  ``[2C, 3C)`` of ``qkv``'s weight and bias, and ``qkv`` is consumed (not reported as
  unexpected; its query and key rows have no place in an attention-free block). A ``qkv``
  without bias gives ``fc`` a zero bias, which is the same map. VAST's ``attn.scale`` and
  ``attn.bias`` have no counterpart in any image checkpoint: they are reported **missing**, like
  every parameter a family adds (xvit's temporal embedding and head, for instance), so loading
  a ViT into a VAST model takes ``strict=False``. They are not filled in here, because a load
  must not overwrite values the model already holds with values the checkpoint never had; a
  fresh model holds the identity (scale 1, bias 0), which is where VAST training starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from model_core.layers import resample_pos_embed

Shape = tuple[int, ...]

_QKV = re.compile(r"(.+\.attn)\.qkv\.(weight|bias)")


@dataclass
class Fitted:
    state: dict[str, Tensor]
    resized: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    conversions: list[str] = field(default_factory=list)


def fit_to_model(state: Mapping[str, Tensor], model_state: Mapping[str, Tensor]) -> Fitted:
    """Applies the adaptations the model needs; tensors that still do not fit are left for the
    key matching to report."""
    fitted = Fitted(dict(state))
    _resize_pos_embed(fitted, model_state)
    _value_slice_into_fc(fitted, model_state)
    return fitted


def _resize_pos_embed(fitted: Fitted, model_state: Mapping[str, Tensor]) -> None:
    src, dst = fitted.state.get("pos_embed"), model_state.get("pos_embed")
    if src is None or dst is None or src.shape == dst.shape:
        return
    if src.ndim != 3 or dst.ndim != 3 or src.shape[-1] != dst.shape[-1]:
        return  # another width: not a grid question
    old_patches, new_patches = src.shape[1] - 1, dst.shape[1] - 1
    old_grid, new_grid = math.isqrt(old_patches), math.isqrt(new_patches)
    if old_grid**2 != old_patches or new_grid**2 != new_patches:
        return
    fitted.state["pos_embed"] = resample_pos_embed(src, new_grid)
    fitted.resized["pos_embed"] = (tuple(src.shape), tuple(dst.shape))
    fitted.conversions.append(
        f"resampled pos_embed from a {old_grid}x{old_grid} to a {new_grid}x{new_grid} "
        "patch grid (bicubic)"
    )


def _value_slice_into_fc(fitted: Fitted, model_state: Mapping[str, Tensor]) -> None:
    state = fitted.state
    adapted: set[str] = set()
    for key in list(state):
        match = _QKV.fullmatch(key)
        if match is None:
            continue
        prefix, kind = match.groups()
        fc = f"{prefix}.fc.{kind}"
        wants_fc = fc in model_state and f"{prefix}.qkv.{kind}" not in model_state
        if not wants_fc or fc in state or state[key].shape[0] % 3:
            continue
        qkv = state.pop(key)
        width = qkv.shape[0] // 3
        state[fc] = qkv[2 * width :].clone()  # value rows; (C, C) or (C,)
        adapted.add(prefix)
    for prefix in adapted:
        bias = f"{prefix}.fc.bias"
        if bias in model_state and bias not in state:
            weight = state[f"{prefix}.fc.weight"]
            state[bias] = torch.zeros(weight.shape[0], dtype=weight.dtype)
    if adapted:
        fitted.conversions.append(
            f"initialised attn.fc of {len(adapted)} VAST block(s) from the value rows of "
            "attn.qkv (qkv consumed); attn.scale and attn.bias are not in the checkpoint"
        )
