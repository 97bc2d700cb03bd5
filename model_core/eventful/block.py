"""One eventful transformer block: the weights of a ``model_core.layers.Block``, the caches of
a ``LayerState``.

A causal TokShift block (``tokshift`` family, ``causal=True``) also runs: its shift moves a slice
of the CLS token's channels from the previous frame, on the residual stream before the attention
and again before the MLP. The previous frame's CLS at those two points is part of the state
(``cls_prev``), so a stream needs no frame but the current one; the shift costs no MACs.

Gates sit after the LayerNorms, as in the paper's configuration: ``norm1 → qkv gate → qkv →
buffer → incremental attention → proj gate → proj → buffer → residual → norm2 → mlp gate → MLP
→ buffer → residual``. The residual stream itself is dense: it is recomputed every frame from
the patch embedding and the buffers, so it needs no cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model_core.layers import Attention, Block, TemporalShift

from .accounting import CostMeter
from .attention import merge_heads, split_heads, update_av_, update_logits_
from .gates import buffer_, gate_, gather_tokens, map_rows
from .policy import GATES, BatchPlan
from .state import LayerState

QKV, PROJ, MLP = (GATES.index(name) for name in ("qkv", "proj", "mlp"))


def check_block(block: Block) -> None:
    """Raises unless ``block`` is a per-frame ViT block, plain or with a causal CLS shift."""
    attn = block.attn
    shift = block.residual_shift
    if shift is not None and not (
        shift.cls_only and all(seg.offset == -1 for seg in shift.segments)
    ):
        raise ValueError(
            "eventful blocks need plain per-frame attention without shifts, or TokShift's "
            "causal CLS shift (a shift that reads the next frame cannot stream)"
        )
    if type(attn) is not Attention:
        raise ValueError("eventful blocks need plain per-frame attention without shifts")
    if attn.kv_shift is not None or attn.out_shift is not None or attn.causal:
        raise ValueError("eventful blocks need attention without temporal shifts or masks")
    if type(attn.grouping).__name__ != "FrameGrouping":
        raise ValueError("eventful blocks need per-frame attention (FrameGrouping)")


def block_step(
    block: Block, x: Tensor, state: LayerState, plan: BatchPlan, meter: CostMeter
) -> Tensor:
    """Runs ``block`` on this frame's residual stream ``x`` ``(S, N, C)`` incrementally.

    Updates ``state`` in place and charges the work to ``meter``; returns the block output.
    """
    attn: Attention = block.attn  # type: ignore[assignment]
    shift = block.residual_shift
    if shift is not None:
        x = shift_cls_(x, state.cls_prev, 0, shift)
    tokens, dim = x.shape[1], x.shape[2]
    heads = attn.num_heads
    hidden = block.mlp.fc1.out_features
    gate_cost = [tokens * dim if gated else 0 for gated in plan.gated]

    # qkv: gate → linear on the selected rows → buffer.
    selection, rows = gate_(block.norm1(x), state.qkv_ref, plan, QKV)
    counts = selection.counts
    v_old_rows = None
    if selection.index is not None:
        v_old = split_heads(state.qkv[..., 2 * dim :], heads)  # (sessions, heads, tokens, d)
        v_old_rows = gather_tokens(v_old, selection.index, dim=2)  # (S, heads, selected, d)
    fresh = map_rows(attn.qkv, rows, selection)  # (sessions, selected, 3 · dim)
    qkv = buffer_(state.qkv, selection, fresh)
    q, k, v = (split_heads(t, heads) for t in qkv.chunk(3, dim=-1))
    # each (sessions, heads, tokens, dim / heads); the selected rows straight from the projection
    q_new, k_new, v_new = (split_heads(t, heads) for t in fresh.chunk(3, dim=-1))
    meter.add("gate", gate_cost)
    meter.add("qkv", [m * dim * 3 * dim for m in counts])
    meter.add_tokens(counts, rows.shape[1])

    logits, dense_qk = update_logits_(state, q, k, selection, (q_new, k_new))
    if dense_qk:
        meter.add("attention", [tokens * tokens * dim] * len(counts))
    else:
        meter.add("attention", [2 * tokens * m * dim for m in counts])
    av = update_av_(state, logits.softmax(dim=-1), v, v_old_rows, selection, v_new)
    if v_old_rows is None:
        meter.add("attention", [tokens * tokens * dim] * len(counts))
    else:
        meter.add("attention", [2 * tokens * m * dim for m in counts])
        # Delta subtractions of v (M·C) and of the attention columns (H·N·M), two adds of av.
        meter.add("accumulator", [m * dim + heads * tokens * m + 2 * tokens * dim for m in counts])

    # Output projection: gate → linear → buffer, then the dense residual add.
    selection, rows = gate_(merge_heads(av), state.proj_ref, plan, PROJ)
    x = x + buffer_(state.proj, selection, map_rows(attn.proj, rows, selection))
    meter.add("gate", gate_cost)
    meter.add("proj", [m * dim * dim for m in selection.counts])
    meter.add_tokens(selection.counts, rows.shape[1])

    if shift is not None:
        x = shift_cls_(x, state.cls_prev, 1, shift)
    # MLP: gate on norm2 → fc1, GELU, fc2 on the selected rows → buffer → residual add.
    selection, rows = gate_(block.norm2(x), state.mlp_ref, plan, MLP)
    mlp = block.mlp
    out = map_rows(lambda r: mlp.fc2(mlp.act(mlp.fc1(r))), rows, selection)
    x = x + buffer_(state.mlp, selection, out)
    meter.add("gate", gate_cost)
    meter.add("mlp", [2 * m * dim * hidden for m in selection.counts])
    meter.add_tokens(selection.counts, rows.shape[1])
    return x


def shift_cls_(x: Tensor, cls_prev: Tensor, point: int, shift: TemporalShift) -> Tensor:
    """TokShift's causal shift for one frame: the CLS token's shifted channels take the previous
    frame's values at this shift ``point`` (zeros after a reset, as the dense model pads).

    ``cls_prev`` ``(S, 2, C)`` is updated in place to this frame's unshifted CLS.
    """
    current = x[:, 0]  # (S, C)
    sessions, channels = current.shape
    shifted = current.reshape(sessions, shift.groups, channels // shift.groups).clone()
    previous = cls_prev[:, point].reshape(shifted.shape)
    for seg in shift.segments:  # offset -1 only (check_block)
        shifted[..., seg.start : seg.stop] = previous[..., seg.start : seg.stop]
    cls_prev[:, point] = current
    return torch.cat([shifted.reshape(sessions, 1, channels), x[:, 1:]], dim=1)
