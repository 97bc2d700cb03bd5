"""Files that cannot be loaded, or not strictly, fail with a ``CheckpointError`` that says why
and names the keys; ``strict=False`` loads what fits and reports the rest."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from model_core import CheckpointError, create_model, load_checkpoint
from model_core.checkpoint import LAYOUTS
from model_core.models import VideoTransformer

TINY = {"img_size": 32, "depth": 2, "num_frames": 2, "num_classes": 5}


def tiny(family: str = "vit_avg", size: str = "tiny", **overrides: object) -> VideoTransformer:
    torch.manual_seed(0)
    return create_model(f"{family}_vit_{size}_patch16_224", **{**TINY, **overrides})


def vit_state(**overrides: object) -> dict[str, Tensor]:
    """A timm-named ViT state dict (vit_avg's names are timm's), every tensor random."""
    generator = torch.Generator().manual_seed(1)
    state = tiny(**overrides).state_dict()
    return {k: torch.randn(v.shape, generator=generator) for k, v in state.items()}


def snapshot(model: VideoTransformer) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: VideoTransformer, before: dict[str, Tensor]) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---- unreadable files -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_random_bytes_are_a_checkpoint_error(tmp_path: Path, suffix: str) -> None:
    # Garbage fails inside the unpickler in many ways; every one must come out the same.
    model = tiny()
    path = tmp_path / f"noise{suffix}"
    for seed in range(40):
        path.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(CheckpointError, match=str(path)):
            load_checkpoint(model, path)


def test_truncated_safetensors_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "vit.safetensors"
    save_file(vit_state(), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tiny(), path)


def test_truncated_pth_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "vit.pth"
    torch.save(vit_state(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tiny(), path)


def test_empty_and_absent_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.touch()
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(tiny(), empty)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tiny(), tmp_path / "absent.pth")


def test_pickled_objects_are_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "trainer.pth"
    torch.save({"state_dict": vit_state(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="Python objects besides tensors") as info:
        load_checkpoint(tiny(), path)
    assert "argparse.Namespace" in str(info.value)


def test_safetensors_content_is_detected_whatever_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    save_file(vit_state(), path)
    assert load_checkpoint(tiny(), path).format == "timm-vit"


# ---- no state dict, unknown layout ----------------------------------------------------------


def test_file_without_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 3, "weights": {"a": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="'state_dict', 'model', 'model_state'") as info:
        load_checkpoint(tiny(), path)
    assert "weights" in str(info.value)


def test_unknown_layout_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(5, 8)}, path)
    with pytest.raises(CheckpointError, match="no known checkpoint layout") as info:
        load_checkpoint(tiny(), path)
    message = str(info.value)
    assert "conv1.weight" in message
    for layout in LAYOUTS:
        assert layout.name in message


# ---- keys that do not line up ---------------------------------------------------------------


def test_other_width_lists_the_mismatched_shapes(tmp_path: Path) -> None:
    path = tmp_path / "vit_small.safetensors"
    save_file(vit_state(), path)  # tiny: 192 channels
    model = tiny(size="small")  # 384 channels
    before = snapshot(model)

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)

    message = str(info.value)
    assert "31 key(s) of another shape" in message
    assert "cls_token: (1, 1, 192) vs (1, 1, 384)" in message
    assert "... and 11 more" in message  # the first 20 are listed
    assert "strict=False" in message
    assert_unchanged(model, before)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = vit_state()
    dropped = state.pop("blocks.1.mlp.fc2.bias")
    state["extra.weight"] = torch.ones(3)
    path = tmp_path / "vit.pth"
    torch.save(state, path)
    model = tiny()
    before = snapshot(model)

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert "1 model key(s) missing from the checkpoint:\n    blocks.1.mlp.fc2.bias" in message
    assert "1 unexpected checkpoint key(s):\n    extra.weight" in message
    assert "Pass strict=False" in message
    assert_unchanged(model, before)

    result = load_checkpoint(model, path, strict=False)
    assert result.missing_keys == ("blocks.1.mlp.fc2.bias",)
    assert result.unexpected_keys == ("extra.weight",)
    assert not result.complete
    assert len(result.loaded_keys) == len(before) - 1
    assert torch.equal(model.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])
    assert not torch.equal(model.blocks[1].mlp.fc2.bias, dropped)  # kept its own value


def test_new_head_partial_load(tmp_path: Path) -> None:
    path = tmp_path / "imagenet.safetensors"
    save_file(vit_state(num_classes=1000), path)
    model = tiny()  # 5 classes
    head_before = model.head.weight.clone()

    with pytest.raises(CheckpointError, match=r"head\.weight: \(1000, 192\) vs \(5, 192\)"):
        load_checkpoint(model, path)
    result = load_checkpoint(model, path, strict=False)

    assert result.mismatched_keys == {
        "head.weight": ((1000, 192), (5, 192)),
        "head.bias": ((1000,), (5,)),
    }
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.head.weight, head_before)
    assert "2 of another shape" in result.summary()
