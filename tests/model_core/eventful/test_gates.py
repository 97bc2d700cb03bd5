"""Token gathers and scatters: the row-copying fast path must pick what ``gather`` picks."""

from __future__ import annotations

import pytest
import torch

from model_core.eventful.gates import expand_index, gather_tokens, map_rows, scatter_tokens_
from model_core.eventful.policy import BatchPlan, Threshold, select_tokens

# (shape, token dim): the references and buffers, v by head, logit rows, logit columns.
SHAPES = [((3, 11, 6), 1), ((3, 2, 11, 4), 2), ((3, 2, 11, 11), 2), ((3, 2, 11, 11), 3)]


def session_index() -> torch.Tensor:
    """Different token ids per session, one of them padded by repeating an id."""
    return torch.tensor([[0, 4, 10], [2, 3, 5], [7, 9, 9]])  # (S, M)


@pytest.mark.parametrize(("shape", "dim"), SHAPES)
def test_gather_tokens_picks_each_sessions_own_rows(shape: tuple[int, ...], dim: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape)
    index = session_index()
    expected = x.gather(dim, expand_index(index, x.shape, dim))
    got = gather_tokens(x, index, dim)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    # A non-contiguous view (v is a slice of the qkv buffer) gives the same rows.
    wide = torch.randn(*shape[:-1], 2 * shape[-1])[..., ::2]
    assert torch.equal(
        gather_tokens(wide, index, dim), wide.gather(dim, expand_index(index, wide.shape, dim))
    )


@pytest.mark.parametrize(("shape", "dim"), SHAPES)
def test_scatter_tokens_writes_only_the_selected_rows(shape: tuple[int, ...], dim: int) -> None:
    torch.manual_seed(1)
    index = session_index()
    buffer = torch.randn(shape)
    expected = buffer.clone()
    rows = gather_tokens(torch.randn(shape), index, dim)
    # The padded session repeats its last id: its two rows must be identical, as the engine's are.
    rows.select(0, 2).narrow(dim - 1, 2, 1).copy_(rows.select(0, 2).narrow(dim - 1, 1, 1))
    expected.scatter_(dim, expand_index(index, shape, dim), rows)
    scatter_tokens_(buffer, index, rows, dim)
    assert torch.equal(buffer, expected)


def test_map_rows_computes_only_the_real_rows_and_pads_with_each_sessions_first() -> None:
    torch.manual_seed(2)
    tokens, dim = 9, 4
    norms = torch.rand(3, tokens)
    norms[0] = 5.0  # one session selects every token: the batch is as wide as it
    norms[2, 3] = 5.0  # another selects one
    plan = BatchPlan.build([Threshold(1.0)] * 3, [False] * 3, tokens)
    selection = select_tokens(norms, plan)
    assert selection.index is not None and selection.mask is not None
    assert selection.counts[0] == tokens
    assert selection.counts[2] == 1
    rows = gather_tokens(torch.randn(3, tokens, dim), selection.index)  # (S, M, C)
    linear = torch.nn.Linear(dim, 6)
    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return linear(x)

    with torch.no_grad():
        got = map_rows(fn, rows, selection)
        expected = linear(rows)  # the padded computation
    assert seen == [sum(selection.counts)]  # only the real rows went through fn
    assert got.shape == expected.shape
    # Real rows as computed padded; padding rows equal the session's first row, as in the
    # padded computation (the padding repeats the first selected token).
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(got[2, 1:], got[2, :1].expand(tokens - 1, 6))
