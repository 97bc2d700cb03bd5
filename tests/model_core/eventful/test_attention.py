"""Incremental query-key product and the attention-value accumulator."""

from __future__ import annotations

from collections.abc import Callable

import torch

from model_core.eventful import EventfulEngine, LayerState, Selection, TopR
from model_core.eventful.attention import split_heads, update_av_, update_logits_
from model_core.eventful.gates import gate_
from model_core.eventful.policy import BatchPlan
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]


def empty_layer(sessions: int, tokens: int, heads: int, head_dim: int) -> LayerState:
    dim = heads * head_dim

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(sessions, *shape)

    return LayerState(
        qkv_ref=zeros(tokens, dim),
        qkv=zeros(tokens, 3 * dim),
        logits=zeros(heads, tokens, tokens),
        attn_ref=zeros(heads, tokens, tokens),
        av=zeros(heads, tokens, head_dim),
        proj_ref=zeros(tokens, dim),
        proj=zeros(tokens, dim),
        mlp_ref=zeros(tokens, dim),
        mlp=zeros(tokens, dim),
        cls_prev=zeros(0, dim),
    )


def test_rows_and_columns_update_gives_the_full_product() -> None:
    torch.manual_seed(0)
    sessions, heads, tokens, head_dim = 2, 3, 20, 8
    state = empty_layer(sessions, tokens, heads, head_dim)
    q, k = torch.randn(2, sessions, heads, tokens, head_dim)
    update_logits_(state, q, k, Selection(None, None, (tokens, tokens)))
    index = torch.tensor([[3, 7, 11], [0, 19, 5]])  # 3 of 20: the row/column path
    rows = torch.arange(sessions)[:, None]
    q[rows, :, index] += torch.randn(sessions, 3, heads, head_dim)
    k[rows, :, index] += torch.randn(sessions, 3, heads, head_dim)
    logits, dense = update_logits_(state, q, k, Selection(index, None, (3, 3)))
    assert not dense
    expected = (q * head_dim**-0.5) @ k.transpose(-2, -1)
    torch.testing.assert_close(logits, expected)


def test_a_token_that_drifts_slowly_is_picked_once_its_error_accumulates() -> None:
    reference = torch.zeros(1, 4, 2)
    plan = BatchPlan.build([TopR(1)], [False], tokens=4)
    picked = []
    for step in range(1, 6):
        c = torch.zeros(1, 4, 2)
        c[0, 0] = 0.3 * step  # slow drift: 0.3 per frame
        c[0, 1] = 1.0 if step == 1 else 0.0  # one large jump, then back to the reference
        selection, _ = gate_(c, reference, plan)
        assert selection.index is not None
        picked.append(int(selection.index[0, 0]))
    # Frame 1 picks the jump; the drift of token 0 then exceeds token 1's return to 0.
    assert picked[0] == 1
    assert 0 in picked[1:]


def test_accumulator_equals_reference_attention_times_values_after_many_steps(
    shallow: VideoTransformer, stream: StreamFn
) -> None:
    frames = stream(40, 64, seed=2, square=16, speed=2)
    engine = EventfulEngine(shallow, capacity=1)
    slot = engine.open(TopR(2))  # 2 of 17 tokens per gate: far from the dense answer
    for t in range(frames.shape[0]):
        engine.step(frames[t : t + 1], [slot])
    heads = shallow.config.num_heads
    dim = shallow.config.embed_dim
    for layer in engine.pool.state.layers:
        v = split_heads(layer.qkv[slot : slot + 1, :, 2 * dim :], heads)
        expected = layer.attn_ref[slot : slot + 1] @ v
        torch.testing.assert_close(layer.av[slot : slot + 1], expected, atol=1e-5, rtol=1e-4)
        q = split_heads(layer.qkv[slot : slot + 1, :, :dim], heads)
        k = split_heads(layer.qkv[slot : slot + 1, :, dim : 2 * dim], heads)
        logits = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
        torch.testing.assert_close(layer.logits[slot : slot + 1], logits, atol=1e-5, rtol=1e-4)
        # The stale columns make it an approximation, not the exact attention.
        exact = logits.softmax(-1) @ v
        assert not torch.allclose(layer.av[slot : slot + 1], exact, atol=1e-4)


def test_padding_never_counts_a_delta_twice() -> None:
    torch.manual_seed(1)
    heads, tokens, head_dim = 2, 6, 4
    state = empty_layer(2, tokens, heads, head_dim)
    v_old = torch.randn(2, heads, tokens, head_dim)
    attn_old = torch.randn(2, heads, tokens, tokens).softmax(-1)
    update_av_(state, attn_old, v_old, None, Selection(None, None, (tokens, tokens)))
    v_new = v_old.clone()
    v_new[:, :, 2] += 1.0
    v_new[1, :, 4] += 1.0
    attn_new = torch.randn(2, heads, tokens, tokens).softmax(-1)
    # Session 0 selected token 2 only, padded with repeats of it; session 1 selected 2 and 4.
    index = torch.tensor([[2, 2], [4, 2]])
    mask = torch.tensor([[True, False], [True, True]])
    v_old_rows = v_old[torch.arange(2)[:, None], :, index].transpose(1, 2)
    update_av_(state, attn_new, v_new, v_old_rows, Selection(index, mask, (1, 2)))
    for s, picked in enumerate(([2], [2, 4])):
        attn_ref = attn_old[s].clone()
        attn_ref[:, :, picked] = attn_new[s][:, :, picked]
        torch.testing.assert_close(state.av[s], attn_ref @ v_new[s])
        torch.testing.assert_close(state.attn_ref[s], attn_ref)
