"""Incremental self-attention over the qkv buffer of one block.

The query-key product ``logits = (q·scale) @ kᵀ`` is a buffer: when tokens ``I`` got new q and k,
rows ``I`` and columns ``I`` are recomputed (``2·N·M·C`` MACs for ``M`` selected), unless a full
product is cheaper (``2·M >= N``). Either way it equals the product of the current q and k.
The softmax is recomputed in full.

The attention-value product is an accumulator ``av = attn_ref @ v`` where column ``j`` of
``attn_ref`` is the attention as of the last update of token ``j``. With new values at rows
``I``:

    av += attn[:, I] @ (v_new[I] − v_old[I]) + (attn[:, I] − attn_ref[:, I]) @ v_old[I]
    attn_ref[:, I] = attn[:, I]

so it keeps equal to ``attn_ref @ v``; columns outside ``I`` keep their old weights, which is
where the approximation lies. Every token selected makes it exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gates import gather_tokens, scatter_tokens_
from .policy import Selection
from .state import LayerState


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(S, N, C)`` to ``(S, H, N, C / H)`` (head-major channels, as ``Attention`` has them)."""
    sessions, tokens, channels = x.shape
    x = x.reshape(sessions, tokens, heads, channels // heads)  # (sessions, tokens, heads, d)
    return x.transpose(1, 2)  # (sessions, heads, tokens, dim / heads)


def merge_heads(x: Tensor) -> Tensor:
    """``(S, H, N, d)`` back to ``(S, N, H·d)``."""
    sessions, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(sessions, tokens, heads * head_dim)  # (sessions, tokens, dim)


def update_logits_(
    state: LayerState,
    q: Tensor,
    k: Tensor,
    selection: Selection,
    new_rows: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, bool]:
    """Brings the query-key buffer up to date with q, k ``(S, H, N, d)``.

    Args:
        new_rows: the selected tokens' q and k ``(S, H, M, d)`` when the caller has them (the
            qkv projection just made them); gathered from ``q`` and ``k`` otherwise.

    Returns:
        The updated logits ``(S, H, N, N)`` and whether the product was recomputed in full.
    """
    scale = q.shape[-1] ** -0.5
    tokens = q.shape[2]
    index = selection.index
    if index is None or 2 * index.shape[1] >= tokens:
        # Scale the small input, not the large product.
        torch.matmul(q * scale, k.transpose(-2, -1), out=state.logits)
        return state.logits, True
    if new_rows is None:
        new_rows = gather_tokens(q, index, dim=2), gather_tokens(k, index, dim=2)
    q_rows, k_rows = new_rows  # each (sessions, heads, selected, dim / heads)
    q_rows = q_rows * scale
    scatter_tokens_(state.logits, index, q_rows @ k.transpose(-2, -1), dim=2)
    # Columns: every query against the new keys; scale the (S, H, M, d) keys, not q.
    scatter_tokens_(state.logits, index, q @ (k_rows * scale).transpose(-2, -1), dim=3)
    return state.logits, False


def update_av_(
    state: LayerState,
    attn: Tensor,
    v: Tensor,
    v_old_rows: Tensor | None,
    selection: Selection,
    v_new_rows: Tensor | None = None,
) -> Tensor:
    """Updates the attention-value accumulator from the new attention ``(S, H, N, N)``.

    Args:
        state: the block's state; ``av`` and ``attn_ref`` are updated in place.
        attn: softmax of the current logits.
        v: current values ``(S, H, N, d)``.
        v_old_rows: values of the selected rows before this step ``(S, H, M, d)``; None when
            the selection is full (the product is then recomputed from scratch).
        selection: the qkv gate's selection.
        v_new_rows: the selected rows of ``v`` ``(S, H, M, d)`` when the caller has them;
            gathered from ``v`` otherwise.

    Returns:
        The accumulator ``(S, H, N, d)``.
    """
    index = selection.index
    if index is None or v_old_rows is None:
        state.attn_ref.copy_(attn)
        torch.matmul(attn, v, out=state.av)
        return state.av
    attn_cols = gather_tokens(attn, index, dim=3)  # (sessions, heads, tokens, selected)
    ref_cols = gather_tokens(state.attn_ref, index, dim=3)  # (sessions, heads, tokens, selected)
    if v_new_rows is None:
        v_new_rows = gather_tokens(v, index, dim=2)
    v_delta = v_new_rows - v_old_rows  # (sessions, heads, selected, d)
    attn_delta = attn_cols - ref_cols
    if selection.mask is not None:
        # Padding repeats a selected index: its deltas must not count twice.
        mask = selection.mask.to(v.dtype)
        v_delta = v_delta * mask[:, None, :, None]
        attn_delta = attn_delta * mask[:, None, None, :]
    state.av.add_(attn_cols @ v_delta).add_(attn_delta @ v_old_rows)
    scatter_tokens_(state.attn_ref, index, attn_cols, dim=3)
    return state.av
