"""Token gates and buffers as functions over explicit tensors.

A gate holds a reference ``u`` per token (a tensor of the session state). For a new input ``c``
it ranks tokens by ``‖c − u‖``, returns the selected rows of ``c`` and refreshes the reference
of those rows only, so an unselected token keeps accumulating error until it is picked. A buffer
holds the last output of a gated operation and scatters recomputed rows into it.

All tensors are session-major: ``(S, N, ...)`` with tokens on dim 1, unless a ``dim`` is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .policy import BatchPlan, Selection, full_selection, select_tokens


def expand_index(index: Tensor, shape: torch.Size | tuple[int, ...], dim: int) -> Tensor:
    """Broadcasts token ids ``(S, M)`` to ``shape`` with ``M`` in place of ``shape[dim]``."""
    view = [index.shape[0]] + [1] * (len(shape) - 1)
    view[dim] = index.shape[1]
    size = list(shape)
    size[dim] = index.shape[1]
    return index.view(view).expand(size)


def token_indexer(
    index: Tensor, shape: torch.Size | tuple[int, ...], dim: int
) -> tuple[Tensor, ...]:
    """Advanced-indexing tuple that picks token ids ``index`` ``(S, M)`` along ``dim`` of a
    tensor of ``shape``, for every position of the dims before it.

    ``x[token_indexer(index, x.shape, dim)]`` equals ``x.gather(dim, ...)`` with the index
    expanded, but copies whole rows of the dims after ``dim`` instead of looking up one index
    per element: several times faster for the ``(S, N, C)`` references and buffers and the
    ``(S, H, N, N)`` logit rows, which move the most bytes. ``dim`` must not be the last dim.
    """
    leading = _leading_aranges(tuple(shape[:dim]), index.device)
    return (*leading, index.view([index.shape[0]] + [1] * (dim - 1) + [index.shape[1]]))


@functools.lru_cache(maxsize=64)
def _leading_aranges(sizes: tuple[int, ...], device: torch.device) -> tuple[Tensor, ...]:
    """``arange`` of each leading dim (sessions, then e.g. heads), shaped to broadcast along its
    own axis of ``len(sizes) + 1``; cached, as every gate of every block asks for the same few.
    The tensors are only ever read."""
    picks = []
    for axis, size in enumerate(sizes):
        view = [1] * (len(sizes) + 1)
        view[axis] = size
        picks.append(torch.arange(size, device=device).view(view))
    return tuple(picks)


def gather_tokens(x: Tensor, index: Tensor, dim: int = 1) -> Tensor:
    """Rows ``index`` ``(S, M)`` of ``x`` along its token axis ``dim``."""
    if dim < x.ndim - 1:
        return x[token_indexer(index, x.shape, dim)]
    return x.gather(dim, expand_index(index, x.shape, dim))


def scatter_tokens_(buffer: Tensor, index: Tensor, rows: Tensor, dim: int = 1) -> None:
    """Writes ``rows`` into ``buffer`` at token ids ``index`` along ``dim``, in place.

    Padded selections repeat an index with identical rows, so the duplicate write is harmless.
    """
    if dim < buffer.ndim - 1:
        buffer.index_put_(token_indexer(index, buffer.shape, dim), rows)
    else:  # columns: no row to copy whole
        buffer.scatter_(dim, expand_index(index, buffer.shape, dim), rows)


def gate_(c: Tensor, reference: Tensor, plan: BatchPlan, gate: int = 0) -> tuple[Selection, Tensor]:
    """Selects tokens of ``c`` ``(S, N, C)`` by accumulated error and refreshes ``reference``.

    ``gate`` is the gate's index in ``GATES`` (qkv, proj, mlp): which threshold applies.

    Returns:
        The selection and the selected rows ``(S, M, C)`` (all of ``c`` when full).
    """
    sessions, tokens = c.shape[:2]
    if plan.all_full:
        reference.copy_(c)
        return full_selection(sessions, tokens), c
    norms = torch.linalg.vector_norm(c - reference, dim=-1)  # (S, N)
    selection = select_tokens(norms, plan, gate)
    if selection.index is None:
        reference.copy_(c)
        return selection, c
    rows = gather_tokens(c, selection.index)  # (S, M, C)
    scatter_tokens_(reference, selection.index, rows)
    return selection, rows


def buffer_(buffer: Tensor, selection: Selection, rows: Tensor) -> Tensor:
    """Scatters recomputed ``rows`` into ``buffer`` ``(S, N, C')`` and returns the buffer."""
    if selection.index is None:
        buffer.copy_(rows)
    else:
        scatter_tokens_(buffer, selection.index, rows)
    return buffer


def map_rows(fn: Callable[[Tensor], Tensor], rows: Tensor, selection: Selection) -> Tensor:
    """``fn``, a per-row operation (linear layers, activations), over a gate's selected rows
    ``(S, M, C)``, computed for the real selections only.

    A padded batch is as wide as its busiest session: one session that recomputes every token
    (a first frame, a burst of motion) would make every other session's few rows as many. The
    real rows are packed into one ``(T, C)`` matrix, ``fn`` runs on it, and the result is
    spread back to ``(S, M, C')`` with each padding row a copy of its session's first row,
    which is what the padding selected (see :func:`~.policy.select_tokens`), so the buffers'
    duplicate writes stay harmless. The indices come from the counts known on the host: no
    device sync.
    """
    if selection.mask is None:
        return fn(rows)
    sessions, width = rows.shape[:2]
    counts = np.asarray(selection.counts)
    real = np.arange(width)[None, :] < counts[:, None]  # (S, M)
    starts = np.cumsum(counts) - counts  # each session's first row in the packed matrix
    slots = np.arange(sessions * width).reshape(sessions, width)
    pack = torch.from_numpy(slots[real]).to(rows.device)  # (T,)
    spread = starts[:, None] + np.where(real, np.arange(width)[None, :], 0)  # (S, M)
    unpack = torch.from_numpy(spread.reshape(-1)).to(rows.device)  # (S · M,)
    packed = fn(rows.reshape(sessions * width, -1).index_select(0, pack))  # (T, C')
    return packed.index_select(0, unpack).reshape(sessions, width, -1)
