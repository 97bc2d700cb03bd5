"""Token gates and buffers as functions over explicit tensors.

A gate holds a reference ``u`` per token (a tensor of the session state). For a new input ``c``
it ranks tokens by ``‖c − u‖``, returns the selected rows of ``c`` and refreshes the reference
of those rows only, so an unselected token keeps accumulating error until it is picked. A buffer
holds the last output of a gated operation and scatters recomputed rows into it.

All tensors are session-major: ``(S, N, ...)`` with tokens on dim 1, unless a ``dim`` is given.
"""

from __future__ import annotations

import functools

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
