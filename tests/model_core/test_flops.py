"""FLOP counts against figures computed by hand (MAC = 1 operation)."""

from __future__ import annotations

import pytest
import torch

from model_core import create_model
from model_core.flops import count_flops


def base(family: str, **overrides: object) -> torch.nn.Module:
    with torch.device("meta"):  # counting is analytic: no weights needed
        return create_model(f"{family}_vit_base_patch16_224", num_classes=1000, **overrides)


def vit_b16_block_macs(tokens: int, dim: int = 768) -> int:
    qkv = tokens * dim * 3 * dim
    attention = 2 * tokens * tokens * dim
    proj = tokens * dim * dim
    mlp = 2 * tokens * dim * 4 * dim
    return qkv + attention + proj + mlp


def test_vit_b16_costs_17_6_gmacs_per_frame() -> None:
    flops = count_flops(base("vit_avg"), num_frames=1)
    by_hand = 196 * (3 * 16 * 16) * 768 + 12 * vit_b16_block_macs(197) + 768 * 1000
    assert flops.total == by_hand
    assert flops.gmacs == pytest.approx(17.6, rel=0.005)


def test_tokshift_costs_exactly_the_image_model() -> None:
    assert count_flops(base("tokshift")).total == count_flops(base("vit_avg")).total
    assert count_flops(base("tokshift")).total == 8 * count_flops(base("vit_avg"), 1).total


def test_laps_overhead_is_the_doubled_attention_matmuls() -> None:
    vit, laps = count_flops(base("vit_avg")), count_flops(base("laps"))
    extra = laps.total - vit.total
    # Pairs of 2N tokens: 2·(T/2)·(2N)²·C instead of 2·T·N²·C, in each of 12 blocks.
    assert extra == 12 * 2 * 8 * 197 * 197 * 768
    assert extra / vit.total == pytest.approx(0.0407, abs=5e-4)


def test_joint_attention_grows_with_t_squared() -> None:
    def attention(frames: int) -> int:
        return count_flops(base("joint", num_frames=frames)).by_part["attention"]

    assert attention(8) == 12 * 2 * (8 * 197) ** 2 * 768
    assert attention(16) == 4 * attention(8)
    per_frame_rest = count_flops(base("joint"), 8).total - attention(8)
    assert (
        per_frame_rest
        == count_flops(base("vit_avg")).total - count_flops(base("vit_avg")).by_part["attention"]
    )


def test_xvit_adds_only_its_head() -> None:
    xvit, vit = count_flops(base("xvit")), count_flops(base("vit_avg"))
    assert (
        xvit.total
        - xvit.by_part["head"]
        - sum(v for k, v in xvit.by_part.items() if k.startswith("temporal_"))
        == vit.total - vit.by_part["head"]
    )
    # One block over 1 + T tokens, then LN -> Linear(768, 768) -> GELU -> Linear(768, 1000).
    assert xvit.by_part["head"] == 768 * 768 + 768 * 1000
    assert sum(v for k, v in xvit.by_part.items() if k.startswith("temporal_")) == (
        vit_b16_block_macs(9)
    )


def test_vast_is_cheaper_than_attention() -> None:
    vast, vit = count_flops(base("vast")), count_flops(base("vit_avg"))
    assert vast.total < vit.total
    assert "qkv" not in vast.by_part
    assert vast.by_part["mixer"] == 12 * 8 * 197 * (768 * 768 + 768)


def test_counts_follow_frames_and_image_size() -> None:
    model = base("tokshift")
    assert count_flops(model, num_frames=16).total == 2 * count_flops(model).total
    small = count_flops(model, img_size=112)
    assert small.by_part["mlp"] == 8 * 12 * 2 * 50 * 768 * 3072
    with pytest.raises(ValueError, match="divide by patch"):
        count_flops(model, img_size=100)


def test_breakdown_table_lists_every_part() -> None:
    table = count_flops(base("vit_avg"), 1).table()
    for part in ("mlp", "qkv", "proj", "attention", "patch_embed", "head", "total"):
        assert part in table
