"""Token gathers and scatters: the row-copying fast path must pick what ``gather`` picks."""

from __future__ import annotations

import pytest
import torch

from model_core.eventful.gates import expand_index, gather_tokens, scatter_tokens_

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
