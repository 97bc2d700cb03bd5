"""A budget that keeps every token reproduces the dense model frame by frame."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from model_core import create_model
from model_core.eventful import KEEP_ALL, EventfulEngine, TopR
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_against_dense(
    model: VideoTransformer, frames: torch.Tensor, stride: int, partner: bool = False
) -> None:
    """Streams ``frames`` with a keep-all budget and compares every frame's tokens and every
    emitted window's logits with the dense model. With ``partner``, a low-budget session
    shares each step, so the keep-all session runs the padded incremental path.

    A per-frame encoder's window logits are the model on the window's frames; a causal
    TokShift's features also carry the frames before the window (its shift reads back one frame
    per block), so its window logits are the head on the dense stream's features."""
    per_frame = model.family.name != "tokshift"
    engine = EventfulEngine(model, capacity=2, stride=stride)
    slot = engine.open(KEEP_ALL)
    other = engine.open(TopR(3)) if partner else None
    window = model.config.num_frames
    with torch.no_grad():
        dense = model.forward_features(frames[None])[0]  # (frames, tokens, dim)
    emitted = 0
    for t in range(frames.shape[0]):
        if other is None:
            result = engine.step(frames[t : t + 1], [slot])
        else:
            result = engine.step(torch.stack([frames[t], frames[-1 - t]]), [slot, other])
        assert rel_err(result.tokens[0], dense[t]) < 1e-4
        logits = result.logits[0]
        if (t + 1) % stride == 0:
            assert logits is not None
            start = max(0, t + 1 - window)
            with torch.no_grad():
                if per_frame:
                    expected = model(frames[None, start : t + 1])[0]
                else:
                    expected = model.forward_head(dense[None, start : t + 1])[0]
            assert rel_err(logits, expected) < 1e-4
            emitted += 1
        else:
            assert logits is None
    assert emitted == frames.shape[0] // stride


def test_tiny_112_keep_all_equals_dense_over_32_frames(
    tiny: VideoTransformer, stream: StreamFn
) -> None:
    check_against_dense(tiny, stream(32, 112), stride=4)


def test_keep_all_stays_exact_on_the_padded_incremental_path(
    tiny: VideoTransformer, stream: StreamFn
) -> None:
    check_against_dense(tiny, stream(32, 112, seed=3), stride=8, partner=True)


def test_causal_tokshift_keep_all_equals_dense_over_32_frames(stream: StreamFn) -> None:
    torch.manual_seed(3)
    model = create_model(
        "tokshift_vit_tiny_patch16_224", causal=True, img_size=112, num_classes=10
    ).eval()
    check_against_dense(model, stream(32, 112, seed=4), stride=4)
    check_against_dense(model, stream(32, 112, seed=5), stride=8, partner=True)


def test_causal_tokshift_stream_carries_the_previous_frame(stream: StreamFn) -> None:
    """The shifted CLS channels really read the previous frame: the stream's features equal the
    model on each frame alone at the first frame only (both read zeros before it)."""
    torch.manual_seed(3)
    model = create_model("tokshift_vit_tiny_patch16_224", causal=True, img_size=64).eval()
    frames = stream(6, 64, seed=6)
    engine = EventfulEngine(model, capacity=1)
    slot = engine.open(KEEP_ALL)
    streamed = torch.stack([engine.step(f[None], [slot]).tokens[0] for f in frames])
    with torch.no_grad():
        alone = model.forward_features(frames[:, None])[:, 0]  # each frame a clip of its own
    torch.testing.assert_close(streamed[0], alone[0], atol=1e-5, rtol=1e-4)
    assert rel_err(streamed[1:, 0], alone[1:, 0]) > 1e-3


@pytest.mark.slow
def test_vit_small_224_keep_all_equals_dense_over_32_frames(stream: StreamFn) -> None:
    torch.manual_seed(0)
    model = create_model("factorized_vit_small_patch16_224", causal=True).eval()
    check_against_dense(model, stream(32, 224, square=48, speed=5), stride=4, partner=True)
