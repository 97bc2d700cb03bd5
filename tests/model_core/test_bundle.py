"""vidrec's one-file bundle: weights plus the config that rebuilds the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model_core import (
    CheckpointError,
    ModelConfig,
    create_model,
    load_bundle,
    load_checkpoint,
    save_bundle,
)
from model_core.checkpoint import (
    read_bundle_config,
    read_training_record,
    save_weights,
    update_bundle_training,
)
from model_core.models import VideoTransformer

TINY = {"img_size": 32, "depth": 2, "num_frames": 4}
LABELS = ("wave", "clap", "jump")


def tiny(family: str = "xvit", size: str = "tiny", seed: int = 0, **kw: object) -> VideoTransformer:
    torch.manual_seed(seed)
    model = create_model(f"{family}_vit_{size}_patch16_224", **{**TINY, "labels": LABELS, **kw})
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)  # zero-init parts matter too
    return model.eval()


def test_round_trip_gives_the_same_model(tmp_path: Path) -> None:
    model = tiny(options={"kv_layout": "per_head"}, causal=True)
    training = {"dataset": "synthetic-gestures", "epochs": 3, "top1": 0.91}

    path = save_bundle(model, tmp_path / "gestures.safetensors", training=training)
    loaded = load_bundle(path)

    assert path == tmp_path / "gestures.safetensors"
    assert loaded.config == model.config
    assert loaded.config.label_names == LABELS
    assert not loaded.training
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.forward_per_frame(x), model.forward_per_frame(x))
    assert read_bundle_config(path) == (model.config, training)
    assert [p.name for p in tmp_path.iterdir()] == ["gestures.safetensors"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the user a service runs as


def test_half_precision_bundle_is_half_the_size_and_loads_as_float32(tmp_path: Path) -> None:
    model = tiny("tokshift")
    full = save_bundle(model, tmp_path / "full.safetensors")
    half = save_bundle(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(half), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    loaded = load_bundle(half)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=2e-2)


def test_training_facts_are_updated_in_place_and_the_tensors_kept(tmp_path: Path) -> None:
    model = tiny("factorized", causal=True)
    path = save_bundle(model, tmp_path / "live.safetensors", {"steps": 9}, dtype=torch.float16)
    with safe_open(str(path), framework="pt") as f:
        before = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

    facts = update_bundle_training(path, {"live_budget": {"budget": {"threshold": 1.0}}})

    assert facts == {"steps": 9, "live_budget": {"budget": {"threshold": 1.0}}}
    assert read_bundle_config(path) == (model.config, facts)
    with safe_open(str(path), framework="pt") as f:
        after = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert after.keys() == before.keys()
    for key, tensor in before.items():
        assert after[key].dtype == tensor.dtype == torch.float16
        assert torch.equal(after[key], tensor), key
    assert [p.name for p in tmp_path.iterdir()] == ["live.safetensors"]  # no temp file left
    with pytest.raises(TypeError, match="JSON-serialisable"):
        update_bundle_training(path, {"bad": object()})
    assert read_bundle_config(path)[1] == facts  # a refused update leaves the file as it was


def test_header_is_the_documented_json(tmp_path: Path) -> None:
    model = tiny("tokshift")
    path = save_bundle(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        keys = set(f.keys())
    assert set(metadata) == {"vidrec"}
    header = json.loads(metadata["vidrec"])
    assert header["format"] == "vidrec-bundle" and header["version"] == 1
    assert header["training"] is None
    assert ModelConfig.from_dict(header["config"]) == model.config
    assert keys == set(model.state_dict())


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path: Path) -> None:
    model = tiny("vit_avg")
    model.blocks[1].norm1.weight = model.blocks[0].norm1.weight  # tied
    proj = model.blocks[0].attn.proj
    proj.weight.data = proj.weight.data.t().contiguous().t()  # same values, transposed memory
    assert not proj.weight.is_contiguous()

    loaded = load_bundle(save_bundle(model, tmp_path / "tied.safetensors"))

    assert torch.equal(loaded.blocks[1].norm1.weight, model.blocks[0].norm1.weight)
    assert torch.equal(loaded.blocks[0].attn.proj.weight, model.blocks[0].attn.proj.weight)


def test_load_checkpoint_reads_a_bundle_into_a_model(tmp_path: Path) -> None:
    source = tiny("laps")
    path = save_bundle(source, tmp_path / "laps.safetensors")
    target = tiny("laps", seed=1)

    result = load_checkpoint(target, path)

    assert result.format == "vidrec-bundle"
    assert result.complete and not result.warnings
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_bundle_into_another_architecture(tmp_path: Path) -> None:
    path = save_bundle(tiny("tokshift"), tmp_path / "tokshift.safetensors")

    with pytest.raises(CheckpointError, match="another shape") as info:
        load_checkpoint(tiny("tokshift", size="small"), path)
    assert "vidrec-bundle" in str(info.value)

    # Same tensors, other family: it loads, and says so.
    result = load_checkpoint(tiny("vit_avg"), path)
    assert result.complete
    assert len(result.warnings) == 1
    assert "family 'tokshift' (bundle) vs 'vit_avg' (model)" in result.warnings[0]


def test_plain_safetensors_is_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(tiny("vit_avg").state_dict(), path)
    with pytest.raises(CheckpointError, match="not a vidrec bundle"):
        load_bundle(path)
    with pytest.raises(CheckpointError, match="not a vidrec bundle"):
        read_bundle_config(path)


def test_a_training_record_is_read_from_bundles_and_from_recorded_plain_weights(
    tmp_path: Path,
) -> None:
    model = tiny()
    bundle = save_bundle(model, tmp_path / "b.safetensors", training={"command": "vidrec train"})
    weights = save_weights(model.state_dict(), tmp_path / "w.safetensors", {"command": "made"})
    plain = tmp_path / "plain.safetensors"
    save_file(model.state_dict(), plain)
    assert read_training_record(bundle) == {"command": "vidrec train"}
    assert read_training_record(weights) == {"command": "made"}
    assert read_training_record(plain) is None
    assert read_training_record(tmp_path / "missing.safetensors") is None
    # Recorded plain weights are still plain weights: they load into a model, not as a bundle.
    other = tiny(seed=1)
    load_checkpoint(other, weights)
    torch.testing.assert_close(other.state_dict(), model.state_dict())
    with pytest.raises(CheckpointError, match="not a vidrec bundle"):
        load_bundle(weights)


def test_newer_version_and_broken_metadata_are_refused(tmp_path: Path) -> None:
    state = tiny("vit_avg").state_dict()
    newer = tmp_path / "newer.safetensors"
    header = {"format": "vidrec-bundle", "version": 2, "config": {}, "training": None}
    save_file(state, newer, metadata={"vidrec": json.dumps(header)})
    with pytest.raises(CheckpointError, match="bundle version 2"):
        load_bundle(newer)
    broken = tmp_path / "broken.safetensors"
    save_file(state, broken, metadata={"vidrec": "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tiny("vit_avg"), broken)


def test_training_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_bundle(tiny("vit_avg"), tmp_path / "x.safetensors", training={"when": object()})
    assert not list(tmp_path.iterdir())


def test_a_vast_bundle_from_before_the_patch_readout_still_reads_its_cls_token(
    tmp_path: Path,
) -> None:
    model = tiny("vast")
    assert model.readout == "patch_max" and model.config.options == {"readout": "patch_max"}
    # The same tensors with the header a vast bundle had before the readout option existed.
    header = {"format": "vidrec-bundle", "version": 1, "training": None}
    header["config"] = {**model.config.to_dict(), "options": {}}
    old = tmp_path / "old.safetensors"
    save_file(model.state_dict(), old, metadata={"vidrec": json.dumps(header)})
    loaded = load_bundle(old)
    assert loaded.readout == "cls" and read_bundle_config(old)[0].options == {"readout": "cls"}
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        torch.testing.assert_close(loaded(x), model.head(tokens[:, :, 0]))
    # A bundle saved now names its readout, and keeps it.
    assert load_bundle(save_bundle(model, tmp_path / "new.safetensors")).readout == "patch_max"
