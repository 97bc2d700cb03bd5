"""The options that run a clip as consecutive segments (``segment_frames``) and reuse a shorter
temporal embedding over it (``temporal_embed_frames``), for every family that mixes time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_core import create_model, load_bundle, save_bundle
from model_core.models import VideoTransformer

SMALL = {"img_size": 32, "depth": 2, "num_classes": 5}
SEGMENTED = {"num_frames": 16, "options": {"segment_frames": 8}}


def small(family: str, **overrides: object) -> VideoTransformer:
    torch.manual_seed(0)
    return create_model(f"{family}_vit_tiny_patch16_224", **{**SMALL, **overrides}).eval()


def clip(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, frames, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["tokshift", "laps", "xvit", "vast", "joint"])
def test_segments_mix_time_only_inside_themselves(family: str) -> None:
    model = small(family, **SEGMENTED)
    x = clip(16)
    with torch.no_grad():
        base = model.forward_features(x)
        changed = x.clone()
        changed[:, 8:] = clip(8, seed=2)  # the second segment only
        after = model.forward_features(changed)
    # The first segment's tokens never saw the second segment.
    torch.testing.assert_close(after[:, :8], base[:, :8], rtol=0, atol=0)
    assert not torch.allclose(after[:, 8:], base[:, 8:])


def test_the_head_reads_every_segment() -> None:
    model = small("tokshift", **SEGMENTED)
    x = clip(16)
    changed = x.clone()
    changed[:, 8:] = clip(8, seed=2)
    with torch.no_grad():
        assert not torch.allclose(model(changed), model(x))


def test_segments_cost_what_their_frames_cost() -> None:
    # Joint attention is quadratic in the frames it sees together: two segments of 8 cost two
    # 8-frame clips, not one 16-frame clip.
    segmented = small("joint", **SEGMENTED).macs()
    eight = small("joint", num_frames=8).macs(8)
    assert segmented["attention"] == 2 * eight["attention"]
    assert small("joint", num_frames=16).macs()["attention"] == 4 * eight["attention"]


def test_a_cyclic_temporal_embedding_repeats_over_the_clip() -> None:
    model = small("xvit", num_frames=16, options={"temporal_embed_frames": 8})
    assert model.temporal_embed is not None and model.temporal_embed.shape[1] == 8
    with torch.no_grad():
        model.temporal_embed.normal_()
    embedding = model._temporal_embedding(16)
    torch.testing.assert_close(embedding[:, 8:], embedding[:, :8], rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple of 8"):
        model(clip(12))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_frames": 12, "options": {"segment_frames": 8}}, "does not divide num_frames"),
        ({"num_frames": 16, "options": {"segment_frames": 0}}, "positive number of frames"),
        ({"num_frames": 16, "options": {"segment_frames": "8"}}, "positive number of frames"),
    ],
)
def test_bad_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small("xvit", **overrides)


def test_a_causal_model_or_a_family_without_embedding_refuses_them() -> None:
    with pytest.raises(ValueError, match="causal model streams"):
        small("xvit", causal=True, **SEGMENTED)
    with pytest.raises(ValueError, match="no temporal embedding"):
        small("tokshift", num_frames=16, options={"temporal_embed_frames": 8})


def test_a_clip_not_made_of_whole_segments_is_refused() -> None:
    with pytest.raises(ValueError, match="segments of 8 frames"):
        small("tokshift", **SEGMENTED)(clip(12))


def test_the_bundle_keeps_them(tmp_path: Path) -> None:
    options = {"segment_frames": 8, "temporal_embed_frames": 8}
    model = small("xvit", num_frames=16, options=options)
    loaded = load_bundle(save_bundle(model, tmp_path / "xvit16.safetensors"))
    assert {k: loaded.config.options[k] for k in options} == options
    x = clip(16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
