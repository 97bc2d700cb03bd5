"""Many sessions in one batched step, slots reset, freed and reused."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from model_core.eventful import KEEP_ALL, Budget, EventfulEngine, Threshold, TopFraction, TopR
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]
FRAMES = 12


def run_alone(
    model: VideoTransformer, frames: torch.Tensor, budgets: Sequence[Budget]
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per frame: (tokens, logits) of one session in an engine of its own."""
    engine = EventfulEngine(model, capacity=1, stride=3)
    slot = engine.open()
    out = []
    for t, budget in enumerate(budgets):
        result = engine.step(frames[t : t + 1], [slot], [budget])
        out.append((result.tokens[0], result.logits[0]))
    return out


def assert_same(
    got: list[tuple[torch.Tensor, torch.Tensor | None]],
    expected: list[tuple[torch.Tensor, torch.Tensor | None]],
    atol: float = 1e-5,
) -> None:
    for (tokens, logits), (tokens_ref, logits_ref) in zip(got, expected, strict=True):
        torch.testing.assert_close(tokens, tokens_ref, atol=atol, rtol=1e-4)
        assert (logits is None) == (logits_ref is None)
        if logits is not None and logits_ref is not None:
            torch.testing.assert_close(logits, logits_ref, atol=atol, rtol=1e-4)


BUDGETS: list[list[Budget]] = [
    [TopR(4)] * FRAMES,
    [Threshold(0.3)] * FRAMES,
    # A budget that changes between frames.
    [TopFraction(0.5), TopR(2), KEEP_ALL, Threshold(1.0)] * (FRAMES // 4),
]


def test_interleaved_sessions_match_each_session_alone(
    streaming: VideoTransformer, stream: StreamFn
) -> None:
    streams = [stream(FRAMES, 64, seed=s, square=16, speed=4) for s in range(3)]
    alone = [run_alone(streaming, s, b) for s, b in zip(streams, BUDGETS, strict=True)]

    engine = EventfulEngine(streaming, capacity=5, stride=3)
    slots = [engine.open() for _ in range(5)]
    # Sessions in slots 4, 1, 3 (not consecutive: the gathered-copy path); session 1 starts
    # two frames late, so fresh and running sessions share steps.
    mine = [slots[4], slots[1], slots[3]]
    starts = [0, 2, 0]
    got: list[list[tuple[torch.Tensor, torch.Tensor | None]]] = [[], [], []]
    for step in range(FRAMES + 2):
        members = [i for i in range(3) if 0 <= step - starts[i] < FRAMES]
        frames = torch.stack([streams[i][step - starts[i]] for i in members])
        budgets = [BUDGETS[i][step - starts[i]] for i in members]
        result = engine.step(frames, [mine[i] for i in members], budgets)
        for row, i in enumerate(members):
            got[i].append((result.tokens[row], result.logits[row]))
    for i in range(3):
        assert_same(got[i], alone[i])


def test_consecutive_slots_update_the_pool_in_place(
    shallow: VideoTransformer, stream: StreamFn
) -> None:
    frames = [stream(FRAMES, 64, seed=s, square=16) for s in range(2)]
    engine = EventfulEngine(shallow, capacity=2, stride=3)
    a, b = engine.open(TopR(3)), engine.open(TopR(3))
    for t in range(FRAMES):
        engine.step(torch.stack([frames[0][t], frames[1][t]]), [a, b])
    alone = run_alone(shallow, frames[1], [TopR(3)] * FRAMES)
    assert engine.totals(b).frames == FRAMES
    ring = engine.pool.state.ring[b]
    torch.testing.assert_close(ring[(FRAMES - 1) % ring.shape[0]], alone[-1][0][0])


def test_a_reset_slot_behaves_like_a_fresh_one(
    streaming: VideoTransformer, stream: StreamFn
) -> None:
    first, second = stream(FRAMES, 64, seed=5), stream(FRAMES, 64, seed=6)
    engine = EventfulEngine(streaming, capacity=1, stride=3)
    slot = engine.open(TopR(3))
    for t in range(FRAMES):
        engine.step(first[t : t + 1], [slot])
    engine.reset(slot)
    got = []
    for t in range(FRAMES):
        result = engine.step(second[t : t + 1], [slot])
        got.append((result.tokens[0], result.logits[0]))
    assert_same(got, run_alone(streaming, second, [TopR(3)] * FRAMES), atol=0)


def test_a_freed_slot_reused_carries_nothing_over(
    streaming: VideoTransformer, stream: StreamFn
) -> None:
    old, new = stream(FRAMES, 64, seed=7), stream(FRAMES, 64, seed=8)
    engine = EventfulEngine(streaming, capacity=2, stride=3)
    slot = engine.open(Threshold(0.2))
    for t in range(FRAMES):
        engine.step(old[t : t + 1], [slot])
    engine.close(slot)
    with pytest.raises(KeyError):
        engine.step(old[:1], [slot])
    reused = engine.open(TopR(3))
    assert reused == slot
    assert engine.totals(reused).frames == 0
    got = []
    for t in range(FRAMES):
        result = engine.step(new[t : t + 1], [reused])
        got.append((result.tokens[0], result.logits[0]))
    assert_same(got, run_alone(streaming, new, [TopR(3)] * FRAMES), atol=0)


def test_pool_refuses_a_full_pool_and_duplicate_slots(shallow: VideoTransformer) -> None:
    engine = EventfulEngine(shallow, capacity=1)
    slot = engine.open()
    with pytest.raises(RuntimeError, match="in use"):
        engine.open()
    with pytest.raises(ValueError, match="twice"):
        engine.step(torch.zeros(2, 3, 64, 64), [slot, slot])
    spec = engine.encoder.spec
    assert engine.bytes_per_slot == spec.bytes_per_slot()


@pytest.mark.parametrize(
    ("name", "causal", "message"),
    [
        ("tokshift_vit_tiny_patch16_224", False, "reads the next frame"),
        ("xvit_vit_tiny_patch16_224", True, "temporal embedding"),
        ("laps_vit_tiny_patch16_224", False, "without temporal shifts"),
        ("vast_vit_tiny_patch16_224", False, "without shifts"),
    ],
)
def test_models_with_temporal_operators_are_refused(name: str, causal: bool, message: str) -> None:
    from model_core import create_model

    with torch.device("meta"):
        model = create_model(name, causal=causal)
    with pytest.raises(ValueError, match=message):
        EventfulEngine(model, capacity=1)


def test_a_patch_readout_is_refused() -> None:
    from model_core import create_model

    with torch.device("meta"):
        model = create_model("vit_avg_vit_tiny_patch16_224", options={"readout": "patch_max"})
    with pytest.raises(ValueError, match="reads out 'patch_max'"):
        EventfulEngine(model, capacity=1)
