"""Loading bundles into a catalog: entries, defaults, describe() and the errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from inference_bundles import AVG_MODEL, CLIP_MODEL, LIVE_MODEL, write_bundles

from model_core.data import CLASS_NAMES
from model_core.flops import count_flops
from service.inference import (
    CatalogError,
    ModelCatalog,
    UnknownModelError,
    is_live,
    pick_default,
    read_configs,
)


def test_every_bundle_is_loaded_once_float32_eval_on_the_device(catalog: ModelCatalog) -> None:
    assert catalog.names == sorted([CLIP_MODEL, LIVE_MODEL, AVG_MODEL])
    assert len(catalog) == 3 and CLIP_MODEL in catalog
    for entry in catalog:
        assert entry.model.training is False
        assert entry.device == torch.device("cpu")
        params = list(entry.model.parameters())
        assert all(p.dtype == torch.float32 and not p.requires_grad for p in params)
        assert entry.labels == CLASS_NAMES
        assert (entry.frames, entry.img_size) == (8, 112)
        assert entry.gmacs_per_clip == pytest.approx(count_flops(entry.model).gmacs)
        assert entry.gmacs_per_frame == pytest.approx(entry.gmacs_per_clip / 8)
        assert entry.parameters == sum(p.numel() for p in entry.model.parameters())
        assert entry.training == {"test": True}
    assert catalog.get(CLIP_MODEL) is catalog.get(CLIP_MODEL)


def test_live_means_the_eventful_engine_can_stream_it(catalog: ModelCatalog) -> None:
    assert not catalog.get(CLIP_MODEL).live
    assert catalog.get(LIVE_MODEL).live and catalog.get(AVG_MODEL).live
    assert catalog.live_names == [LIVE_MODEL, AVG_MODEL]


@pytest.mark.parametrize(
    ("family", "causal", "live"),
    [
        ("factorized", True, True),
        ("factorized", False, False),  # the temporal head looks at the whole window
        ("tokshift", True, True),
        ("tokshift", False, False),  # the shift reads the next frame
        ("vit_avg", False, True),
        ("xvit", True, False),
        ("laps", False, False),
        ("vast", False, False),
    ],
)
def test_live_models_are_those_the_engine_streams_causally(
    family: str, causal: bool, live: bool
) -> None:
    from model_core import create_model
    from model_core.eventful import EventfulEngine

    with torch.device("meta"):
        model = create_model(f"{family}_vit_tiny_patch16_224", causal=causal)
    assert is_live(model.config) is live
    if live:
        EventfulEngine(model, capacity=1, device="meta")


def test_defaults_are_the_zoo_defaults_when_present(catalog: ModelCatalog) -> None:
    assert catalog.clip_default.name == CLIP_MODEL
    live = catalog.live_default
    assert live is not None and live.name == LIVE_MODEL
    assert catalog.resolve(None, "clip").name == CLIP_MODEL
    assert catalog.resolve(None, "live").name == LIVE_MODEL
    assert catalog.resolve(AVG_MODEL, "live").name == AVG_MODEL


def test_describe_is_json_ready(catalog: ModelCatalog) -> None:
    rows = json.loads(json.dumps(catalog.describe()))
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == catalog.names
    row = by_name[CLIP_MODEL]
    assert row["family"] == "tokshift"
    assert row["labels"] == list(CLASS_NAMES)
    assert (row["frames"], row["img_size"], row["live"]) == (8, 112, False)
    assert row["gmacs_per_clip"] == pytest.approx(catalog.get(CLIP_MODEL).gmacs_per_clip, abs=1e-4)
    assert row["gmacs_per_frame"] == pytest.approx(row["gmacs_per_clip"] / 8, abs=1e-4)
    assert row["default_for"] == ["clip"]
    assert by_name[LIVE_MODEL]["default_for"] == ["live"]
    assert by_name[AVG_MODEL]["default_for"] == []
    assert by_name[LIVE_MODEL]["family"] == "factorized" and by_name[LIVE_MODEL]["live"]


def test_only_the_named_bundles_are_loaded(models_dir: Path) -> None:
    catalog = ModelCatalog.load(models_dir, [AVG_MODEL], device="cpu")
    assert catalog.names == [AVG_MODEL]
    # The only model serves both roles: clips and live streams.
    assert catalog.clip_default.name == AVG_MODEL
    assert catalog.describe()[0]["default_for"] == ["clip", "live"]


def test_first_suitable_defaults_without_the_zoo_names(tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / f"{AVG_MODEL}.safetensors", tmp_path / "a_avg.safetensors")
    shutil.copy(models_dir / f"{CLIP_MODEL}.safetensors", tmp_path / "b_shift.safetensors")
    shutil.copy(models_dir / f"{LIVE_MODEL}.safetensors", tmp_path / "c_causal.safetensors")
    configs = read_configs(tmp_path)
    assert pick_default(configs, "clip") == "b_shift"  # the first one that is not a live model
    assert pick_default(configs, "live") == "a_avg"
    only_clip = {"b_shift": configs["b_shift"]}
    assert pick_default(only_clip, "live") is None
    catalog = ModelCatalog.load(tmp_path, ["b_shift"], device="cpu")
    assert catalog.live_default is None
    with pytest.raises(UnknownModelError, match="unknown live model"):
        catalog.resolve(None, "live")


def test_configured_defaults(models_dir: Path) -> None:
    catalog = ModelCatalog.load(
        models_dir, device="cpu", clip_model=AVG_MODEL, live_model=AVG_MODEL
    )
    assert catalog.clip_default.name == AVG_MODEL
    assert catalog.live_default is catalog.get(AVG_MODEL)
    with pytest.raises(CatalogError, match="cannot serve live streams"):
        ModelCatalog.load(models_dir, device="cpu", live_model=CLIP_MODEL)
    with pytest.raises(UnknownModelError, match="nope"):
        ModelCatalog.load(models_dir, [CLIP_MODEL], device="cpu", clip_model="nope")


def test_unknown_model_lists_the_known_ones(catalog: ModelCatalog, models_dir: Path) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.get("resnet50")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'resnet50'" in message and all(name in message for name in catalog.names)
    with pytest.raises(UnknownModelError, match="unknown live model 'tokshift"):
        catalog.resolve(CLIP_MODEL, "live")
    with pytest.raises(UnknownModelError, match=f"known: .*{CLIP_MODEL}"):
        ModelCatalog.load(models_dir, ["resnet50"], device="cpu")


def test_an_empty_or_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no model bundles"):
        ModelCatalog.load(tmp_path, device="cpu")
    with pytest.raises(CatalogError, match="no model directory"):
        ModelCatalog.load(tmp_path / "nowhere", device="cpu")


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x08" + b"\0" * 7])
def test_a_broken_bundle_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    write_bundles(tmp_path, (AVG_MODEL,))
    (tmp_path / "broken.safetensors").write_bytes(content)
    with pytest.raises(CatalogError, match=r"cannot load model bundle .*broken\.safetensors"):
        ModelCatalog.load(tmp_path, device="cpu")
    with pytest.raises(CatalogError, match=r"broken\.safetensors"):
        read_configs(tmp_path)
    # The good one still loads on its own.
    assert ModelCatalog.load(tmp_path, [AVG_MODEL], device="cpu").names == [AVG_MODEL]


def test_a_truncated_bundle_is_a_clear_error(tmp_path: Path, models_dir: Path) -> None:
    data = (models_dir / f"{AVG_MODEL}.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CatalogError, match=r"cut\.safetensors"):
        ModelCatalog.load(tmp_path, device="cpu")
