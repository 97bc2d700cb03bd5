"""MAC accounting: the dense figure matches model_core.flops, lower budgets spend less, and the
count matches the rows that really ran through the linear layers."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from model_core import create_model
from model_core.eventful import (
    KEEP_ALL,
    BatchPlan,
    Budget,
    EventfulEngine,
    Selection,
    Threshold,
    TopFraction,
    TopR,
    gates,
)
from model_core.eventful.accounting import dense_frame_macs
from model_core.eventful.policy import select_tokens
from model_core.flops import count_flops
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]


@pytest.mark.parametrize(
    ("name", "img_size"),
    [
        ("factorized_vit_tiny_patch16_224", 112),
        ("factorized_vit_small_patch16_224", 224),
        ("factorized_vit_base_patch16_224", 224),
        ("vit_avg_vit_base_patch16_224", 224),
    ],
)
def test_dense_frame_macs_agree_with_count_flops_without_the_head(name: str, img_size: int) -> None:
    with torch.device("meta"):
        model = create_model(name, causal=name.startswith("factorized"), img_size=img_size)
    flops = count_flops(model, num_frames=1)
    encoder = {
        part: macs
        for part, macs in flops.by_part.items()
        if part != "head" and not part.startswith("temporal_")
    }
    assert dict(dense_frame_macs(model)) == encoder
    if name == "factorized_vit_base_patch16_224":
        assert sum(encoder.values()) / 1e9 == pytest.approx(17.6, rel=0.01)


def run(
    model: VideoTransformer, frames: torch.Tensor, budget: Budget
) -> tuple[float, float, EventfulEngine]:
    engine = EventfulEngine(model, capacity=1, stride=4)
    slot = engine.open(budget)
    for t in range(frames.shape[0]):
        engine.step(frames[t : t + 1], [slot])
    totals = engine.totals(slot)
    return totals.macs / 1e9, totals.dense_macs / 1e9, engine


def test_lower_budgets_spend_fewer_gmacs(shallow: VideoTransformer, stream: StreamFn) -> None:
    frames = stream(16, 64, seed=4, square=16, speed=4)
    spent = []
    for budget in (TopR(2), TopR(5), TopFraction(0.6), KEEP_ALL):
        gmacs, dense, _ = run(shallow, frames, budget)
        spent.append(gmacs)
    assert spent == sorted(spent)
    assert len(set(spent)) == len(spent)
    assert spent[-1] == pytest.approx(dense, rel=1e-12)


def test_keep_all_and_first_frames_cost_exactly_the_dense_step(
    shallow: VideoTransformer, stream: StreamFn
) -> None:
    frames = stream(2, 64)
    engine = EventfulEngine(shallow, capacity=2)
    slot = engine.open(TopR(1))
    first = engine.step(frames[:1], [slot]).costs[0]
    assert first.macs == first.dense_macs
    assert first.tokens == [(17, 17, 17)] * 4
    second = engine.step(frames[1:], [slot]).costs[0]
    assert second.tokens == [(1, 1, 1)] * 4
    assert second.gmacs < 0.2 * second.dense_gmacs


class RowCounter:
    """Forward hooks that add up the MACs of every row the encoder's linear layers ran on."""

    def __init__(self, model: VideoTransformer) -> None:
        self.macs = 0
        self.handles = [
            module.register_forward_hook(self.hook)
            for block in model.blocks
            for module in block.modules()
            if isinstance(module, nn.Linear)
        ]

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], _: object) -> None:
        linear: nn.Linear = module  # type: ignore[assignment]
        rows = inputs[0].numel() // linear.in_features
        self.macs += rows * linear.in_features * linear.out_features

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("budget", [TopR(3), Threshold(0.5), TopFraction(0.3)])
def test_count_matches_the_rows_that_ran(
    shallow: VideoTransformer, stream: StreamFn, budget: Budget
) -> None:
    frames = stream(8, 64, seed=9, square=16)
    engine = EventfulEngine(shallow, capacity=1)
    slot = engine.open(budget)
    dim = shallow.config.embed_dim
    tokens = shallow.config.tokens_per_frame
    heads = shallow.config.num_heads
    counter = RowCounter(shallow)
    try:
        for t in range(frames.shape[0]):
            counter.macs = 0
            cost = engine.step(frames[t : t + 1], [slot]).costs[0]
            linear = cost.macs["qkv"] + cost.macs["proj"] + cost.macs["mlp"]
            assert linear == counter.macs
            # Attention and accumulator from the recorded qkv counts, by the paper's rules.
            if t == 0:
                assert cost.macs["attention"] == 4 * 2 * tokens * tokens * dim
                continue
            attention = accumulator = 0
            for qkv_rows, _, _ in cost.tokens:
                qk = (
                    tokens * tokens * dim if 2 * qkv_rows >= tokens else 2 * tokens * qkv_rows * dim
                )
                attention += qk + 2 * tokens * qkv_rows * dim
                accumulator += qkv_rows * dim + heads * tokens * qkv_rows + 2 * tokens * dim
            assert cost.macs["attention"] == attention
            assert cost.macs["accumulator"] == accumulator
            assert cost.macs["gate"] == 4 * 3 * tokens * dim
    finally:
        counter.close()


def test_padding_is_reported_not_charged(shallow: VideoTransformer, stream: StreamFn) -> None:
    frames = stream(3, 64, seed=1, square=16)
    engine = EventfulEngine(shallow, capacity=2)
    a, b = engine.open(TopR(2)), engine.open(TopR(6))
    engine.step(torch.stack([frames[0], frames[0]]), [a, b])
    result = engine.step(torch.stack([frames[1], frames[2]]), [a, b])
    small, large = result.costs
    assert small.tokens == [(2, 2, 2)] * 4
    assert large.tokens == [(6, 6, 6)] * 4
    assert result.padded == 4 * 3 * (6 - 2)
    assert small.macs["mlp"] < large.macs["mlp"]


@pytest.mark.parametrize("pin", [True, False])
def test_the_class_token_is_recomputed_at_every_gate_when_pinned(
    shallow: VideoTransformer, stream: StreamFn, pin: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned, the class token is one of the r tokens of every gate. Unpinned, the first gate
    never picks it: its input there (class embedding plus position) never changes, while the
    moving square's patches do."""
    picked: list[list[int]] = []

    def spy(norms: torch.Tensor, plan: BatchPlan, gate: int = 0) -> Selection:
        selection = select_tokens(norms, plan, gate)
        if selection.index is not None:
            picked.append(selection.index[0].tolist())
        return selection

    monkeypatch.setattr(gates, "select_tokens", spy)
    frames = stream(5, 64, seed=3, square=16)
    engine = EventfulEngine(shallow, capacity=1, pin_class_token=pin)
    slot = engine.open(TopR(2))
    for t in range(frames.shape[0]):
        cost = engine.step(frames[t : t + 1], [slot]).costs[0]
        if t > 0:
            assert all(rows == (2, 2, 2) for rows in cost.tokens)  # r tokens a gate, pinned or not
    gates_per_frame = 3 * shallow.config.depth
    assert len(picked) == 4 * gates_per_frame  # every gate of every frame after the first
    if pin:
        assert all(0 in index for index in picked)
    else:
        assert not any(0 in index for index in picked[::gates_per_frame])


def test_a_threshold_per_gate_selects_per_gate(shallow: VideoTransformer, stream: StreamFn) -> None:
    """Three equal thresholds are the one threshold; a zero qkv threshold with infinite others
    recomputes every changed token before the qkv projection and only the pinned class token
    at the projection and MLP gates."""
    frames = stream(6, 64, seed=5, square=16)
    assert run(shallow, frames, Threshold(0.5))[0] == run(shallow, frames, Threshold((0.5,) * 3))[0]
    engine = EventfulEngine(shallow, capacity=1)
    slot = engine.open(Threshold((0.0, math.inf, math.inf)))
    engine.step(frames[:1], [slot])  # the first frame recomputes everything
    for t in range(1, frames.shape[0]):
        cost = engine.step(frames[t : t + 1], [slot]).costs[0]
        assert all(qkv > 1 and (proj, mlp) == (1, 1) for qkv, proj, mlp in cost.tokens)
