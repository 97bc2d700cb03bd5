"""Every registered model, and the properties each temporal family must have."""

from __future__ import annotations

import pytest
import torch

from model_core import create_model, list_models
from model_core.models import FAMILIES, VideoTransformer

SMALL = {"img_size": 32, "depth": 2, "num_frames": 8, "num_classes": 5}
TEMPORAL_FAMILIES = sorted(set(FAMILIES) - {"vit_avg"})
CAUSAL_FAMILIES = sorted(name for name, fam in FAMILIES.items() if fam.supports_causal)


def small(family: str, **overrides: object) -> VideoTransformer:
    torch.manual_seed(0)
    return create_model(f"{family}_vit_tiny_patch16_224", **{**SMALL, **overrides}).eval()


def clip(batch: int = 2, frames: int = 8, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_registry_has_every_family_at_every_size() -> None:
    names = list_models()
    for family in FAMILIES:
        for size in ("tiny", "small", "base", "large"):
            assert f"{family}_vit_{size}_patch16_224" in names
    assert list_models(family="xvit") == [n for n in names if n.startswith("xvit_")]
    assert list_models("*_base_*") == [n for n in names if "_base_" in n]


def test_unknown_model_and_argument_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(TypeError, match="unknown model argument"):
        create_model("vit_avg_vit_tiny_patch16_224", img_sise=32)
    with pytest.raises(ValueError, match="no causal variant"):
        create_model("laps_vit_tiny_patch16_224", causal=True)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    x = clip()
    logits = model(x)
    assert logits.shape == (2, SMALL["num_classes"])
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.patch_embed.proj.weight.grad is not None
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_widths_follow_timm() -> None:
    with torch.device("meta"):
        for size, (dim, depth, heads) in {
            "tiny": (192, 12, 3),
            "small": (384, 12, 6),
            "base": (768, 12, 12),
            "large": (1024, 24, 16),
        }.items():
            model = create_model(f"vit_avg_vit_{size}_patch16_224")
            assert model.config.embed_dim == dim
            assert len(model.blocks) == depth
            assert model.blocks[0].attn.num_heads == heads


def test_vit_avg_state_dict_uses_timm_names() -> None:
    model = create_model("vit_avg_vit_tiny_patch16_224", depth=2)
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    for i in range(2):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            expected |= {f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"}
    expected |= {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert set(model.state_dict()) == expected
    assert model.pos_embed.shape == (1, 197, 192)


def n_params(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


@pytest.mark.parametrize("family", ["tokshift", "laps"])
def test_shift_families_add_no_parameters(family: str) -> None:
    assert n_params(small(family)) == n_params(small("vit_avg"))


def test_xvit_backbone_adds_no_parameters() -> None:
    backbone_only = ("head.", "temporal_embed")
    assert n_params(small("xvit"), backbone_only) == n_params(small("vit_avg"), ("head.",))
    assert small("xvit").temporal_embed is not None


@pytest.mark.parametrize("family", TEMPORAL_FAMILIES)
def test_frame_order_matters_for_temporal_families(family: str) -> None:
    model, x = small(family), clip()
    with torch.no_grad():
        forward, reverse = model(x), model(x.flip(1))
    assert not torch.allclose(forward, reverse, atol=1e-5), family


def test_frame_order_does_not_matter_for_frame_average() -> None:
    model, x = small("vit_avg"), clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(1)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_causal_outputs_ignore_later_frames(family: str) -> None:
    model = small(family, causal=True)
    x = clip()
    cut = 4
    changed = x.clone()
    changed[:, cut + 1 :] = torch.randn_like(changed[:, cut + 1 :])
    with torch.no_grad():
        a, b = model.forward_per_frame(x), model.forward_per_frame(changed)
    assert a.shape == (2, 8, SMALL["num_classes"])
    torch.testing.assert_close(a[:, : cut + 1], b[:, : cut + 1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[:, cut + 1 :], b[:, cut + 1 :], atol=1e-5)
    # The clip answer of a causal model is its answer after the last frame.
    with torch.no_grad():
        torch.testing.assert_close(model(x), a[:, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_per_frame_outputs_are_refused_for_non_causal_twins(family: str) -> None:
    with pytest.raises(ValueError, match="causal models only"):
        small(family).forward_per_frame(clip())


def test_causal_tokshift_reads_only_the_past() -> None:
    causal = small("tokshift", causal=True).blocks[0].residual_shift
    assert causal is not None
    assert [(s.start, s.stop, s.offset) for s in causal.segments] == [(48, 96, -1)]


def test_tokshift_with_shift_switched_off_is_the_plain_vit() -> None:
    vit = small("vit_avg")
    tokshift = small("tokshift", options={"shift_div": 0})
    tokshift.load_state_dict(vit.state_dict())
    for frames in (1, 8):
        x = clip(frames=frames)
        with torch.no_grad():
            torch.testing.assert_close(tokshift.forward_features(x), vit.forward_features(x))


def test_tokshift_with_one_frame_reads_zeros_past_the_clip_edge() -> None:
    """One frame: the shifted CLS channels read past both edges, so they are zeros; every patch
    token then equals the plain ViT's run on that zeroed input."""
    vit, tokshift = small("vit_avg", depth=1), small("tokshift", depth=1)
    tokshift.load_state_dict(vit.state_dict())
    x = clip(frames=1)
    zeroed = vit.embed_frames(x).clone()
    zeroed[:, :, 0, : 192 // 2] = 0  # channels [0, C/4) read t+1, [C/4, C/2) read t-1
    with torch.no_grad():
        expected = vit.norm(vit.blocks[0](zeroed))
        got = tokshift.forward_features(x)
    assert not torch.allclose(got, vit.forward_features(x))
    torch.testing.assert_close(got[:, :, 1:], expected[:, :, 1:], rtol=1e-5, atol=1e-5)


def test_laps_needs_frames_divisible_by_its_leaps() -> None:
    model = small("laps", depth=3)  # levels 1, 2, 3: leaps of T/2, T/4, T/8
    with pytest.raises(ValueError, match="divide by 8"):
        model(clip(frames=4))


def test_temporal_embedding_bounds_the_clip_length() -> None:
    model = small("xvit", num_frames=4)
    with pytest.raises(ValueError, match="4 frames of temporal embedding"):
        model(clip(frames=8))


@pytest.mark.parametrize(("family", "readout"), [("tokshift", "cls"), ("vast", "patch_max")])
def test_the_head_reads_the_family_readout(family: str, readout: str) -> None:
    model = small(family)
    assert model.readout == readout
    tokens = torch.randn(2, 8, 5, model.config.embed_dim)  # CLS + 2x2 patches per frame
    cls_poked, patch_poked = tokens.clone(), tokens.clone()
    cls_poked[:, :, 0] += 5.0
    patch_poked[:, :, 3] += 5.0  # one patch becomes every channel's maximum
    with torch.no_grad():
        base = model.forward_head(tokens)
        cls_moved = not torch.allclose(model.forward_head(cls_poked), base)
        patch_moved = not torch.allclose(model.forward_head(patch_poked), base)
    assert (cls_moved, patch_moved) == (readout == "cls", readout == "patch_max")
    if readout == "patch_max":
        torch.testing.assert_close(model.frame_readout(tokens), tokens[:, :, 1:].amax(dim=2))


def test_an_unknown_readout_is_refused() -> None:
    with pytest.raises(ValueError, match="readout"):
        small("vit_avg", options={"readout": "mean"})
