"""Each external checkpoint layout, built here with its published key names and shapes from a
vidrec model's weights placed by hand, loads into a fresh model and gives the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from model_core import CheckpointError, LoadResult, create_model, load_checkpoint
from model_core.layers import resample_pos_embed
from model_core.models import FAMILIES, VideoTransformer

TINY = {"img_size": 64, "depth": 2, "num_frames": 4, "num_classes": 7}
# The published shapes: ViT-B/16 at 224, Kinetics-400 heads.
BASE = {"img_size": 224, "depth": 2, "num_frames": 4, "num_classes": 400}


def randomize(model: VideoTransformer, seed: int) -> VideoTransformer:
    """Every tensor random (LayerNorms and zero-init embeddings too), so a misplaced weight
    changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def build(family: str, size: str = "tiny", seed: int = 0, **overrides: object) -> VideoTransformer:
    defaults = TINY if size == "tiny" else BASE
    model = create_model(f"{family}_vit_{size}_patch16_224", **{**defaults, **overrides})
    return randomize(model, seed)


def clip(model: VideoTransformer, seed: int = 1) -> Tensor:
    cfg = model.config
    shape = (1, cfg.num_frames, 3, cfg.img_size, cfg.img_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def load_and_compare(
    source: VideoTransformer, target: VideoTransformer, path: Path, *, strict: bool = True
) -> LoadResult:
    """Loads ``path`` into ``target`` and checks it now computes what ``source`` computes (and
    did not before)."""
    x = clip(source)
    with torch.no_grad():
        expected, before = source(x), target(x)
    assert not torch.allclose(before, expected)
    result = load_checkpoint(target, path, strict=strict)
    with torch.no_grad():
        torch.testing.assert_close(target(x), expected, rtol=1e-5, atol=1e-6)
    return result


def _linear_state(prefix: str, layer: nn.Module) -> dict[str, Tensor]:
    state = {f"{prefix}.weight": layer.weight}
    if layer.bias is not None:
        state[f"{prefix}.bias"] = layer.bias
    return state


def vit_backbone_state(model: VideoTransformer) -> dict[str, Tensor]:
    """timm ``VisionTransformer`` names, written out one by one (no head)."""
    state = {
        "cls_token": model.cls_token,
        "pos_embed": model.pos_embed,
        **_linear_state("patch_embed.proj", model.patch_embed.proj),
        **_linear_state("norm", model.norm),
    }
    for i, block in enumerate(model.blocks):
        for name in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            state.update(_linear_state(f"blocks.{i}.{name}", block.get_submodule(name)))
    return {key: value.detach().clone() for key, value in state.items()}


def timm_vit_state(model: VideoTransformer) -> dict[str, Tensor]:
    """A timm ViT state dict: the backbone and a linear ``head``."""
    head = {key: value.detach().clone() for key, value in _linear_state("head", model.head).items()}
    return {**vit_backbone_state(model), **head}


# ---- timm ViT ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "container", "prefix"),
    [
        (".safetensors", None, ""),
        (".pth", "state_dict", "module."),
        (".bin", None, "model."),
        (".pt", "model", "module.model."),
    ],
)
def test_timm_vit_loads_from_every_file_type(
    tmp_path: Path, suffix: str, container: str | None, prefix: str
) -> None:
    source = build("vit_avg")
    state = {prefix + key: value for key, value in timm_vit_state(source).items()}
    path = tmp_path / f"vit{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({container: state, "epoch": 3} if container else state, path)

    target = build("vit_avg", seed=1)
    result = load_and_compare(source, target, path)

    assert result.format == "timm-vit"
    assert result.container == container
    assert result.complete and not result.warnings
    assert len(result.loaded_keys) == len(state)
    for part in filter(None, prefix.split(".")):
        assert f"removed prefix '{part}.'" in result.conversions


def _head_keys(model: VideoTransformer) -> set[str]:
    return {key for key in model.state_dict() if key.startswith("head.")}


# What each family adds to (or takes from) an image ViT, as a timm checkpoint reports it.
FAMILY_GAPS = {
    "vit_avg": lambda m: (set(), set()),
    "tokshift": lambda m: (set(), set()),
    "laps": lambda m: (set(), set()),
    "joint": lambda m: ({"temporal_embed"}, set()),
    "xvit": lambda m: ({"temporal_embed"} | _head_keys(m), {"head.weight", "head.bias"}),
    "factorized": lambda m: (_head_keys(m), {"head.weight", "head.bias"}),
    "vast": lambda m: (
        {f"blocks.{i}.attn.{p}" for i in range(TINY["depth"]) for p in ("scale", "bias")},
        set(),
    ),
}


def test_every_family_has_its_timm_expectation() -> None:
    assert set(FAMILY_GAPS) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_timm_vit_loads_into_every_family(tmp_path: Path, family: str) -> None:
    timm_state = timm_vit_state(build("vit_avg"))
    path = tmp_path / "vit.safetensors"
    save_file(timm_state, path)
    target = build(family, seed=1)
    missing, unexpected = FAMILY_GAPS[family](target)

    result = load_checkpoint(target, path, strict=False)

    assert result.format == "timm-vit"
    assert set(result.missing_keys) == missing
    assert set(result.unexpected_keys) == unexpected
    assert not result.mismatched_keys
    loaded = target.state_dict()
    for key in result.loaded_keys:
        source_key = key.replace("attn.fc.", "attn.qkv.")
        expected = timm_state[source_key]
        if key != source_key:  # VAST: the value rows of qkv
            expected = expected[2 * expected.shape[0] // 3 :]
        torch.testing.assert_close(loaded[key], expected, rtol=0, atol=0)
    if missing or unexpected:
        with pytest.raises(CheckpointError, match="strict=False"):
            load_checkpoint(build(family, seed=2), path)
    else:
        assert load_checkpoint(build(family, seed=2), path).complete


def test_vast_from_vit_consumes_qkv_and_keeps_identity_affine(tmp_path: Path) -> None:
    timm_state = timm_vit_state(build("vit_avg"))
    path = tmp_path / "vit.safetensors"
    save_file(timm_state, path)
    target = create_model("vast_vit_tiny_patch16_224", **TINY)

    result = load_checkpoint(target, path, strict=False)

    assert "blocks.0.attn.fc.weight" in result.loaded_keys
    assert not any("qkv" in key for key in result.unexpected_keys)
    assert any("value rows" in note for note in result.conversions)
    mixer = target.blocks[1].attn
    torch.testing.assert_close(mixer.fc.bias, timm_state["blocks.1.attn.qkv.bias"][2 * 192 :])
    assert torch.equal(mixer.scale, torch.ones(192)) and torch.equal(mixer.bias, torch.zeros(192))


def test_pos_embed_is_resampled_from_224_to_112(tmp_path: Path) -> None:
    source = build("vit_avg", img_size=224)
    path = tmp_path / "vit224.safetensors"
    save_file(timm_vit_state(source), path)
    target = build("vit_avg", seed=1, img_size=112)

    result = load_checkpoint(target, path)

    assert result.complete
    assert result.resized == {"pos_embed": ((1, 197, 192), (1, 50, 192))}
    torch.testing.assert_close(target.pos_embed, resample_pos_embed(source.pos_embed, 7))
    assert torch.equal(target.pos_embed[:, 0], source.pos_embed[:, 0])  # CLS kept
    assert target(clip(target)).shape == (1, TINY["num_classes"])


# ---- TokShift ----------------------------------------------------------------------------


def tokshift_v1_state(model: VideoTransformer) -> dict[str, Tensor]:
    """The v1 release: ViT-pytorch names under ``module.base_model.``, separate q, k, v."""
    root = "module.base_model.transformer."
    dim = model.config.embed_dim
    state = {
        root + "embeddings.patch_embeddings.weight": model.patch_embed.proj.weight,
        root + "embeddings.patch_embeddings.bias": model.patch_embed.proj.bias,
        root + "embeddings.position_embeddings": model.pos_embed,
        root + "embeddings.cls_token": model.cls_token,
        root + "encoder.encoder_norm.weight": model.norm.weight,
        root + "encoder.encoder_norm.bias": model.norm.bias,
        "module.base_model.head.weight": model.head.weight,
        "module.base_model.head.bias": model.head.bias,
    }
    for i, block in enumerate(model.blocks):
        layer = f"{root}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            qkv = getattr(block.attn.qkv, kind)
            state[layer + f"attn.query.{kind}"] = qkv[:dim]
            state[layer + f"attn.key.{kind}"] = qkv[dim : 2 * dim]
            state[layer + f"attn.value.{kind}"] = qkv[2 * dim :]
            state[layer + f"attn.out.{kind}"] = getattr(block.attn.proj, kind)
            state[layer + f"attention_norm.{kind}"] = getattr(block.norm1, kind)
            state[layer + f"ffn_norm.{kind}"] = getattr(block.norm2, kind)
            state[layer + f"ffn.fc1.{kind}"] = getattr(block.mlp.fc1, kind)
            state[layer + f"ffn.fc2.{kind}"] = getattr(block.mlp.fc2, kind)
    return {key: value.detach().clone() for key, value in state.items()}


def test_tokshift_v1_release_at_base_width(tmp_path: Path) -> None:
    source = build("tokshift", "base")
    state = tokshift_v1_state(source)
    assert state["module.base_model.transformer.encoder.layer.0.attn.query.weight"].shape == (
        768,
        768,
    )
    assert state["module.base_model.transformer.embeddings.position_embeddings"].shape == (
        1,
        197,
        768,
    )
    path = tmp_path / "tokshift_k400.pth"
    torch.save({"epoch": 12, "arch": "vit", "state_dict": state, "best_prec1": 77.3}, path)

    target = build("tokshift", "base", seed=1)
    result = load_and_compare(source, target, path)

    assert (result.format, result.container) == ("tokshift-v1", "state_dict")
    assert result.complete and not result.warnings
    assert any("fused attn.query/key/value" in note for note in result.conversions)


def test_tokshift_v1_into_another_family_warns(tmp_path: Path) -> None:
    path = tmp_path / "tokshift.pth"
    torch.save({"state_dict": tokshift_v1_state(build("tokshift"))}, path)
    result = load_checkpoint(build("vit_avg"), path)
    assert result.complete
    assert result.warnings and "'tokshift' family" in result.warnings[0]


def test_tokshift_v1_incomplete_qkv_is_reported_by_source_name(tmp_path: Path) -> None:
    state = tokshift_v1_state(build("tokshift"))
    del state["module.base_model.transformer.encoder.layer.1.attn.key.bias"]
    path = tmp_path / "tokshift.pth"
    torch.save({"state_dict": state}, path)

    result = load_checkpoint(build("tokshift"), path, strict=False)

    assert result.missing_keys == ("blocks.1.attn.qkv.bias",)
    assert set(result.unexpected_keys) == {
        "base_model.transformer.encoder.layer.1.attn.query.bias",
        "base_model.transformer.encoder.layer.1.attn.value.bias",
    }


def test_tokshift_v2_release(tmp_path: Path) -> None:
    source = build("tokshift")
    state = {f"module.base_model.{k}": v for k, v in timm_vit_state(source).items()}
    path = tmp_path / "tokshift_v2.pth"
    torch.save({"state_dict": state, "epoch": 1}, path)

    target = build("tokshift", seed=1)
    result = load_and_compare(source, target, path)

    assert result.format == "tokshift-v2"
    assert result.complete


# ---- X-ViT -------------------------------------------------------------------------------


def xvit_release_state(model: VideoTransformer) -> dict[str, Tensor]:
    """The SlowFast-format release: ``base_model.*`` (timm names, ``temp_embed``) and
    ``consensus.*`` (the temporal-attention head)."""
    state = {f"base_model.{key}": value for key, value in vit_backbone_state(model).items()}
    assert model.temporal_embed is not None
    state["base_model.temp_embed"] = model.temporal_embed.detach().clone()
    head = model.head
    state["consensus.cls_token"] = head.cls_token.detach().clone()
    block = head.temporal_encoder[0]
    for name in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
        for key, value in _linear_state(name, block.get_submodule(name)).items():
            state[f"consensus.temporal_encoder.0.{key}"] = value.detach().clone()
    for index in (0, 1, 4):  # LayerNorm, Linear, (GELU, Dropout), Linear
        for key, value in _linear_state(str(index), head.mlp_head[index]).items():
            state[f"consensus.mlp_head.{key}"] = value.detach().clone()
    return state


def save_slowfast(state: dict[str, Tensor], path: Path) -> Path:
    torch.save(
        {
            "epoch": 30,
            "model_state": state,
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
            "cfg": "MODEL:\n  ARCH: xvit\n",
        },
        path,
    )
    return path


def test_xvit_release_at_base_width(tmp_path: Path) -> None:
    source = build("xvit", "base")
    state = xvit_release_state(source)
    assert state["base_model.temp_embed"].shape == (1, 4, 1, 768)
    assert "consensus.temporal_encoder.0.attn.qkv.bias" not in state
    path = save_slowfast(state, tmp_path / "checkpoint_epoch_00030.pyth")

    target = build("xvit", "base", seed=1)
    result = load_and_compare(source, target, path)

    assert (result.format, result.container) == ("xvit-release", "model_state")
    assert result.complete and not result.warnings


def test_xvit_release_image_head_is_unexpected(tmp_path: Path) -> None:
    source = build("xvit")
    state = xvit_release_state(source)
    state["base_model.head.weight"] = torch.zeros(7, 192)
    state["base_model.head.bias"] = torch.zeros(7)
    path = save_slowfast(state, tmp_path / "xvit.pyth")

    with pytest.raises(CheckpointError, match=r"base_model\.head\.weight"):
        load_checkpoint(build("xvit", seed=1), path)
    target = build("xvit", seed=1)
    result = load_and_compare(source, target, path, strict=False)
    assert result.unexpected_keys == ("base_model.head.weight", "base_model.head.bias")
    assert not result.missing_keys


def test_xvit_release_into_per_head_layout_loads_with_a_warning(tmp_path: Path) -> None:
    path = save_slowfast(xvit_release_state(build("xvit")), tmp_path / "xvit.pyth")
    target = build("xvit", seed=1, options={"kv_layout": "per_head"})

    result = load_checkpoint(target, path)

    assert result.complete
    assert len(result.warnings) == 1 and "kv_layout='release'" in result.warnings[0]


# ---- vidrec's own state dict ---------------------------------------------------------------


@pytest.mark.parametrize("family", ["xvit", "vast", "factorized"])
def test_vidrec_state_dict_round_trip(tmp_path: Path, family: str) -> None:
    source = build(family)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    target = build(family, seed=1)

    result = load_and_compare(source, target, path)

    assert result.format == "vidrec-state-dict"
    assert result.complete and not result.conversions


# ---- X-ViT release: the unused classifier and the 16-frame configurations -----------------


def xvit_cfg(frames: int, segments: int, shift_div: int, classes: int) -> str:
    """The parts of a SlowFast ``cfg.dump()`` the loader reads, as yacs writes them (sorted
    sections, two-space indents)."""
    return (
        f"DATA:\n  MEAN:\n  - 0.5\n  NUM_FRAMES: {frames}\n  SAMPLING_RATE: 16\n"
        f"MODEL:\n  ARCH: xvit\n  DROPOUT_RATE: 0.5\n  NUM_CLASSES: {classes}\n"
        f"XVIT:\n  BACKBONE:\n    DROP_PATH_RATE: 0.0\n  CONSENSUS_TYPE: vit\n"
        f"  NUM_SEGMENTS: {segments}\n  SHIFT_DIV: {shift_div}\n  USE_XVIT: true\n"
    )


def with_new_fc(state: dict[str, Tensor], classes: int, dim: int, seed: int = 5) -> dict:
    """What ``MODEL.DROPOUT_RATE > 0`` adds to every release checkpoint: ``new_fc``."""
    generator = torch.Generator().manual_seed(seed)
    return {
        **state,
        "new_fc.weight": torch.randn(classes, dim, generator=generator),
        "new_fc.bias": torch.randn(classes, generator=generator),
    }


def save_release(state: dict[str, Tensor], path: Path, cfg: str | None = None) -> Path:
    checkpoint: dict[str, object] = {"epoch": 30, "model_state": state, "optimizer_state": {}}
    if cfg is not None:
        checkpoint["cfg"] = cfg
    torch.save(checkpoint, path)
    return path


def test_xvit_release_with_dropout_ignores_the_unused_classifier(tmp_path: Path) -> None:
    source = build("xvit", "base")
    state = with_new_fc(xvit_release_state(source), 400, 768)
    path = save_release(state, tmp_path / "k400.pyth", xvit_cfg(4, 4, 8, 400))

    target = build("xvit", "base", seed=1)
    result = load_and_compare(source, target, path)  # strict

    assert result.format == "xvit-release"
    assert result.ignored_keys == ("new_fc.weight", "new_fc.bias")
    assert result.complete and not result.unexpected_keys and not result.warnings
    assert any("new_fc is never called" in note for note in result.conversions)
    assert "2 ignored (new_fc.weight, new_fc.bias)" in result.summary()
    # The official inference never reads new_fc: other values give the same logits.
    other = save_release(with_new_fc(xvit_release_state(source), 400, 768, seed=9), tmp_path / "o")
    again = build("xvit", "base", seed=2)
    load_checkpoint(again, other)
    x = clip(source)
    with torch.no_grad():
        torch.testing.assert_close(again(x), target(x), rtol=0, atol=0)


def test_xvit_release_without_dropout_keeps_its_image_head_unexpected(tmp_path: Path) -> None:
    # With DROPOUT_RATE 0 the release applies base_model.head before the consensus; vidrec has
    # no such layer, so it must not vanish silently the way new_fc does.
    state = xvit_release_state(build("xvit"))
    state["base_model.head.weight"] = torch.zeros(7, 192)
    path = save_release(state, tmp_path / "xvit.pyth")
    result = load_checkpoint(build("xvit", seed=1), path, strict=False)
    assert result.unexpected_keys == ("base_model.head.weight",)
    assert not result.ignored_keys


K400_16 = {"num_frames": 16, "options": {"segment_frames": 8, "temporal_embed_frames": 8}}


def test_xvit_release_kinetics_16_frames_run_as_two_8_frame_segments(tmp_path: Path) -> None:
    source = build("xvit", num_frames=8)  # the release's ViT: 8 frames of temporal embedding
    state = with_new_fc(xvit_release_state(source), TINY["num_classes"], 192)
    assert state["base_model.temp_embed"].shape == (1, 8, 1, 192)
    path = save_release(state, tmp_path / "k400_16x16.pyth", xvit_cfg(16, 8, 8, 7))

    target = build("xvit", seed=1, **K400_16)
    result = load_checkpoint(target, path)

    assert result.complete and not result.warnings
    frames = torch.randn(2, 16, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        # The release, computed independently: its shift and temporal embedding restart at
        # frame 8 (two segments through the 8-frame backbone), and one consensus reads all 16
        # per-frame CLS features; nothing is averaged.
        halves = [source.forward_features(frames[:, :8]), source.forward_features(frames[:, 8:])]
        expected = source.forward_head(torch.cat(halves, dim=1))
        torch.testing.assert_close(target(frames), expected, rtol=1e-5, atol=1e-6)
        # And it is not the whole clip through one 16-frame shift.
        unsegmented = build("xvit", seed=1, num_frames=16, options={"temporal_embed_frames": 8})
        load_checkpoint(unsegmented, path, strict=False)
        assert not torch.allclose(unsegmented(frames), expected, atol=1e-4)


def test_xvit_release_ssv2_tiles_its_8_frame_temporal_embedding(tmp_path: Path) -> None:
    source = build("xvit", num_frames=8, options={"shift_div": 4})
    state = with_new_fc(xvit_release_state(source), TINY["num_classes"], 192)
    path = save_release(state, tmp_path / "ssv2_16x16.pyth", xvit_cfg(16, 16, 4, 7))
    ssv2 = {"num_frames": 16, "options": {"shift_div": 4, "temporal_embed_frames": 8}}

    target = build("xvit", seed=1, **ssv2)
    result = load_checkpoint(target, path)

    assert result.complete and not result.warnings
    # Independently: a plain 16-entry embedding holding the 8 entries twice, as the release's
    # view(B·16 // 8, 8, ...) + temp_embed adds them; the shift runs across all 16 frames.
    reference = build("xvit", seed=2, num_frames=16, options={"shift_div": 4})
    tiled = dict(state)
    tiled["base_model.temp_embed"] = state["base_model.temp_embed"].repeat(1, 2, 1, 1)
    load_checkpoint(reference, save_release(tiled, tmp_path / "tiled.pyth"))
    x = torch.randn(1, 16, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(target(x), reference(x), rtol=1e-5, atol=1e-6)


def test_xvit_release_cfg_warns_about_a_model_set_up_otherwise(tmp_path: Path) -> None:
    state = xvit_release_state(build("xvit", num_frames=8))
    path = save_release(state, tmp_path / "k400.pyth", xvit_cfg(16, 8, 8, 7))
    target = build("xvit", seed=1, num_frames=16, options={"temporal_embed_frames": 8})

    result = load_checkpoint(target, path)

    assert result.complete
    (warning,) = result.warnings
    assert "segment_frames=8 (model: None)" in warning


def test_a_16_frame_model_names_the_option_an_8_frame_embedding_needs() -> None:
    model = build("xvit", num_frames=8)
    with pytest.raises(ValueError, match="temporal_embed_frames"):
        model(torch.randn(1, 16, 3, 64, 64))


# ---- LAPS release --------------------------------------------------------------------------

# The run folder LAPS-transformer's main_tokshift.py saves into (utils/parser.get_store_name).
LAPS_RUN = "ViT_LAPS_vit_base_patch16_224_in21k_kinetics_C7_8x8_E18_LR0.18_B18_S64_D4"
LAPS_LEVELS = "_SLevel_s2_1_2_3_1_s3_2_3_1_2"


def save_laps_code(state: dict[str, Tensor], path: Path) -> Path:
    """As main_tokshift.py saves: the DDP model's state dict with its training state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "epoch": 16,
            "state_dict": {f"module.base_model.{k}": v for k, v in state.items()},
            "best_acc1": 76.04,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.18, "params": [0]}]},
            "scheduler": {"last_epoch": 15, "milestones": {10: 1, 15: 1}},
        },
        path,
    )
    return path


def test_laps_release_in_its_run_folder_loads_into_laps(tmp_path: Path) -> None:
    source = build("laps", num_frames=8)
    folder = tmp_path / "video_checkpoints" / (LAPS_RUN + LAPS_LEVELS)
    path = save_laps_code(timm_vit_state(source), folder / "best_ckpt_e15.pth")

    target = build("laps", seed=1, num_frames=8)
    result = load_and_compare(source, target, path)

    assert (result.format, result.container) == ("laps-release", "state_dict")
    assert result.complete and not result.warnings
    assert any("ViT_LAPS net (fold_div 4, levels 1_2_3_1)" in n for n in result.conversions)


def test_laps_release_warns_about_another_family_or_settings(tmp_path: Path) -> None:
    folder = tmp_path / (LAPS_RUN + "_SLevel_s2_1_2_1_2_s3_2_3_1_2")
    path = save_laps_code(timm_vit_state(build("laps", num_frames=8)), folder / "ckpt_e3.pth")

    into_tokshift = load_checkpoint(build("tokshift", num_frames=8), path)
    other_levels = load_checkpoint(build("laps", num_frames=8), path)

    assert into_tokshift.format == "laps-release"
    assert "trained for the 'laps' family" in into_tokshift.warnings[0]
    assert other_levels.warnings == (
        "LAPS release weights were trained with levels=[1, 2, 1, 2]; this model has "
        "levels=[1, 2, 3, 1]",
    )


def test_the_laps_codes_tokshift_run_is_tokshift_v2(tmp_path: Path) -> None:
    run = "TokShift_vit_base_patch16_224_in21k_kinetics_C7_8x32_E18_LR0.23_B24_S64_D4"
    path = save_laps_code(timm_vit_state(build("tokshift")), tmp_path / run / "best_ckpt_e17.pth")
    result = load_checkpoint(build("laps", num_frames=8), path)
    assert result.format == "tokshift-v2"
    assert "trained for the 'tokshift' family" in result.warnings[0]


@pytest.mark.parametrize("family", ["laps", "tokshift", "vit_avg"])
def test_a_v2_file_without_its_run_folder_takes_the_models_family(
    tmp_path: Path, family: str
) -> None:
    # ViT, TokShift and ViT_LAPS save the same names: without the run folder nothing says
    # which, so none of them is warned about.
    source = build("laps", num_frames=8)
    path = save_laps_code(timm_vit_state(source), tmp_path / "best_ckpt_e15.pth")
    result = load_checkpoint(build(family, seed=1, num_frames=8), path)
    assert result.format == "tokshift-v2" and result.complete and not result.warnings
    assert any(f"loaded as this model's {family!r}" in note for note in result.conversions)
    xvit = load_checkpoint(build("xvit", seed=1), path, strict=False)
    assert "ViT, TokShift or LAPS net" in xvit.warnings[0]


# ---- X-ViT release: logits against the release's forward, written out -----------------------


def _release_shift(x: Tensor, segments: int, shift_div: int) -> Tensor:
    """The release's key/value shift: ``(B·T, heads, N, d)`` regrouped as segments of
    ``segments`` frames, channels head-major; C/shift_div channels from t+1, as many from t-1,
    zeros past a segment's edges."""
    nt, heads, tokens, d = x.shape
    x = x.reshape(nt // segments, segments, heads, tokens, d).permute(0, 1, 2, 4, 3)
    x = x.reshape(nt // segments, segments, heads * d, tokens)  # (B·T/S, S, C, N)
    fold = heads * d // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    out = out.reshape(nt // segments, segments, heads, d, tokens).permute(0, 1, 2, 4, 3)
    return out.reshape(nt, heads, tokens, d)


def _release_block(
    s: dict[str, Tensor], p: str, x: Tensor, heads: int, eps: float, shift: Any = None
) -> Tensor:
    f = torch.nn.functional
    b, n, c = x.shape
    h = f.layer_norm(x, (c,), s[p + "norm1.weight"], s[p + "norm1.bias"], eps)
    qkv = f.linear(h, s[p + "attn.qkv.weight"], s.get(p + "attn.qkv.bias"))
    q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    if shift is not None:
        k, v = shift(k), shift(v)
    attn = ((q @ k.transpose(-2, -1)) * (c // heads) ** -0.5).softmax(dim=-1)
    h = (attn @ v).transpose(1, 2).reshape(b, n, c)
    x = x + f.linear(h, s[p + "attn.proj.weight"], s[p + "attn.proj.bias"])
    h = f.layer_norm(x, (c,), s[p + "norm2.weight"], s[p + "norm2.bias"], eps)
    h = f.linear(f.gelu(f.linear(h, s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"])),
                 s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"])  # fmt: skip
    return x + h


def release_logits(
    s: dict[str, Tensor], frames: Tensor, *, segments: int, shift_div: int, heads: int
) -> Tensor:
    """What the X-ViT release computes in eval mode, from its own state dict (facts from
    1adrianb/video-transformers, written here without vidrec's layers)."""
    f = torch.nn.functional
    b, t = frames.shape[:2]
    x = f.conv2d(frames.flatten(0, 1), s["base_model.patch_embed.proj.weight"],
                 s["base_model.patch_embed.proj.bias"], stride=16)  # fmt: skip
    x = x.flatten(2).transpose(1, 2)  # (B·T, patches, C)
    c = x.shape[-1]
    x = torch.cat([s["base_model.cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    x = x + s["base_model.pos_embed"]
    held = s["base_model.temp_embed"].shape[1]  # always 8 in the release
    x = (x.reshape(-1, held, *x.shape[1:]) + s["base_model.temp_embed"]).flatten(0, 1)
    depth = 1 + max(int(k.split(".")[2]) for k in s if k.startswith("base_model.blocks."))
    for i in range(depth):
        x = _release_block(s, f"base_model.blocks.{i}.", x, heads, 1e-6,
                           lambda y: _release_shift(y, segments, shift_div))  # fmt: skip
    x = f.layer_norm(x, (c,), s["base_model.norm.weight"], s["base_model.norm.bias"], 1e-6)
    x = x[:, 0].reshape(b, t, c)  # base_model.head is a Dropout: the CLS features go on
    x = torch.cat([s["consensus.cls_token"].expand(b, -1, -1), x], dim=1)
    x = _release_block(s, "consensus.temporal_encoder.0.", x, heads, 1e-5)
    m = "consensus.mlp_head."
    x = f.layer_norm(x[:, 0], (c,), s[m + "0.weight"], s[m + "0.bias"], 1e-5)
    x = f.linear(f.gelu(f.linear(x, s[m + "1.weight"], s[m + "1.bias"])),
                 s[m + "4.weight"], s[m + "4.bias"])  # fmt: skip
    return x  # new_fc is never applied


@pytest.mark.parametrize(
    ("name", "segments", "shift_div", "options"),
    [
        ("k400", 8, 8, {"shift_div": 8, "segment_frames": 8, "temporal_embed_frames": 8}),
        ("ssv2", 16, 4, {"shift_div": 4, "temporal_embed_frames": 8}),
    ],
)
def test_xvit_16_frame_configs_compute_the_release_logits(
    tmp_path: Path, name: str, segments: int, shift_div: int, options: dict[str, Any]
) -> None:
    state = with_new_fc(xvit_release_state(build("xvit", num_frames=8)), 7, 192)
    path = save_release(state, tmp_path / f"{name}.pyth", xvit_cfg(16, segments, shift_div, 7))
    model = build("xvit", seed=1, num_frames=16, options=options)
    assert not load_checkpoint(model, path).warnings
    frames = torch.randn(2, 16, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = release_logits(
            {k: v.double() for k, v in state.items()},
            frames.double(),
            segments=segments,
            shift_div=shift_div,
            heads=3,
        )
        torch.testing.assert_close(model.double()(frames.double()), expected)
