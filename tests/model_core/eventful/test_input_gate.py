"""The input gate: a threshold budget with ``input=t`` re-embeds only the patches whose pixels
moved more than ``t`` since their last embedding, and charges only those."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from model_core.eventful import KEEP_ALL, EventfulEngine, Threshold
from model_core.eventful.accounting import dense_frame_macs
from model_core.models import VideoTransformer

StreamFn = Callable[..., torch.Tensor]


def per_patch_macs(model: VideoTransformer) -> tuple[int, int]:
    """MACs of embedding one patch, and pixels per patch."""
    proj = model.patch_embed.proj
    pixels = proj.in_channels * model.patch_embed.patch_size**2
    return pixels * proj.out_channels, pixels


def test_the_input_threshold_is_checked() -> None:
    assert Threshold(2.0, input=4).input == 4
    assert Threshold((1.0, 2.0, 2.0), input=0.0).input == 0.0
    for bad in (-1.0, True, "4", float("nan")):
        with pytest.raises(ValueError, match="input threshold"):
            Threshold(2.0, input=bad)  # type: ignore[arg-type]


def test_only_changed_patches_are_embedded_and_the_output_stays_exact(
    shallow: VideoTransformer,
) -> None:
    """Frames that differ in one patch: the session with an input gate embeds that patch alone,
    yet its patch embeddings equal the model's on the whole frame (the other patches' pixels
    are unchanged, so their kept embeddings are exact)."""
    size, patch = shallow.config.img_size, shallow.patch_embed.patch_size
    torch.manual_seed(3)
    first = torch.randn(3, size, size)
    frames = first.repeat(5, 1, 1, 1)
    for t in range(1, 5):  # the patch at grid (1, 2) changes every frame, nothing else does
        frames[t, :, patch : 2 * patch, 2 * patch : 3 * patch] += 0.5 * t
    engine = EventfulEngine(shallow, capacity=2, stride=2)
    plain, gated = engine.open(Threshold(0.0)), engine.open(Threshold(0.0, input=0.0))
    embed_macs, pixels = per_patch_macs(shallow)
    patches = (size // patch) ** 2
    for t, frame in enumerate(frames):
        out = engine.step(torch.stack([frame, frame]), [plain, gated])
        kept = engine.pool.state.patch_tokens[gated]
        torch.testing.assert_close(kept, shallow.patch_embed(frame[None])[0], rtol=0, atol=1e-5)
        assert out.costs[0].macs["patch_embed"] == patches * embed_macs
        assert out.costs[1].macs["patch_embed"] == (patches if t == 0 else 1) * embed_macs
        # the gate's subtractions are charged to the gated session only, after its first frame
        extra = out.costs[1].macs["gate"] - out.costs[0].macs["gate"]
        assert extra == (patches * pixels if t else 0)


def test_small_changes_accumulate_until_they_cross_the_threshold(
    shallow: VideoTransformer,
) -> None:
    """A patch drifting by a little each frame is embedded once its total change since its last
    embedding exceeds the threshold, not never (as comparing with the last frame would)."""
    size, patch = shallow.config.img_size, shallow.patch_embed.patch_size
    torch.manual_seed(4)
    base = torch.randn(3, size, size)
    drift = torch.zeros(3, size, size)
    drift[:, :patch, :patch] = 1.0 / (3 * patch * patch) ** 0.5  # the patch's norm: 1 a frame
    engine = EventfulEngine(shallow, capacity=1, stride=2)
    slot = engine.open(Threshold(1.0, input=2.5))
    embed_macs, _ = per_patch_macs(shallow)
    counts = []
    for t in range(8):
        frame = base + t * drift
        frame[:, -patch:, -patch:] = torch.randn(3, patch, patch)  # the last patch: flicker
        out = engine.step(frame[None], [slot])
        counts.append(out.costs[0].macs["patch_embed"] // embed_macs)
    # A first frame embeds every patch; the flickering patch is embedded every frame and the
    # drifting one when it has moved 3 since its last embedding (above 2.5): frames 3 and 6.
    assert counts == [(size // patch) ** 2, 1, 1, 2, 1, 1, 2, 1]


def test_a_session_may_turn_its_input_gate_on_mid_stream(
    shallow: VideoTransformer, stream: StreamFn
) -> None:
    """The references follow every frame, so a session that turns its input gate on embeds only
    what moved since the last frame, and its embeddings stay the model's."""
    frames = stream(10, shallow.config.img_size, seed=5)
    engine = EventfulEngine(shallow, capacity=2, stride=2)
    dense, switched = engine.open(KEEP_ALL), engine.open(KEEP_ALL)
    embed_macs, _ = per_patch_macs(shallow)
    patches = dense_frame_macs(shallow)["patch_embed"] // embed_macs
    for t, frame in enumerate(frames):
        budgets = [None, Threshold(0.0, input=0.0)] if t == 4 else None
        out = engine.step(torch.stack([frame, frame]), [dense, switched], budgets=budgets)
        embedded = out.costs[1].macs["patch_embed"] // embed_macs
        if t >= 4:
            assert 1 <= embedded < patches  # the square covers a few patches of the frame
        kept = engine.pool.state.patch_tokens[switched]
        torch.testing.assert_close(kept, shallow.patch_embed(frame[None])[0], rtol=0, atol=1e-5)
