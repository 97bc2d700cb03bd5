"""scripts/recommend_live_budget.py: the live budget a bundle recommends, picked from a sweep,
written into the bundle, and what the service makes of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from model_core import create_model, save_bundle
from model_core.checkpoint import read_bundle_config, update_bundle_training
from service.inference import ModelCatalog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from recommend_live_budget import budget_of_label, main, pick  # noqa: E402


def _row(budget: str, ratio: float, lost: float, high: float | None = None) -> dict[str, Any]:
    return {
        "bundle": "b.safetensors",
        "budget": budget,
        "gmac_ratio": ratio,
        "top1_lost_points": lost,
        "top1_lost_ci95": [lost - 1.0, lost + 0.1 if high is None else high],
        "dense_top1": 0.6,
        "windows": 64,
    }


ROWS = [
    _row("keep-all", 1.0, 0.0, high=0.0),
    _row("top 25%", 2.8, 12.7),
    _row("threshold 0.5", 2.4, 2.3),
    _row("threshold 1", 4.0, 2.3),
    # Lucky on this sample: a small point estimate, but an interval reaching past the bound.
    _row("threshold 1.25", 4.5, 1.0, high=2.9),
    _row("threshold 1.5", 5.0, 7.2),
]


@pytest.mark.parametrize(
    ("label", "budget"),
    [
        ("keep-all", {"keep_all": True}),
        (f"top {100 * 0.25:g}%", {"fraction": 0.25}),  # the labels the benchmark writes
        (f"top {100 * 0.1:g}%", {"fraction": 0.1}),
        (f"threshold {1.0:g}", {"threshold": 1.0}),
        (f"threshold {0.75:g}", {"threshold": 0.75}),
        ("threshold 0.75/2/1.5", {"threshold": [0.75, 2.0, 1.5]}),  # one per gate
    ],
)
def test_labels_of_the_benchmark_name_their_budgets(label: str, budget: dict[str, Any]) -> None:
    assert budget_of_label(label) == budget


def test_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="not a budget label"):
        budget_of_label("half")


def test_the_cheapest_budget_within_the_bound_is_picked() -> None:
    assert pick(ROWS, 2.5)["budget"] == "threshold 1"  # not 1.25: its interval ends at 2.9
    assert pick(ROWS, 3.0)["budget"] == "threshold 1.25"
    assert pick(ROWS, 8.0)["budget"] == "threshold 1.5"
    assert pick(ROWS, 1.0)["budget"] == "keep-all"
    # A report from before the intervals: the point estimate is all there is.
    bare = [{k: v for k, v in row.items() if k != "top1_lost_ci95"} for row in ROWS]
    assert pick(bare, 2.5)["budget"] == "threshold 1.25"
    with pytest.raises(ValueError, match="no measured budget"):
        pick(ROWS[1:], 1.0)


def _live_bundle(directory: Path, name: str, causal: bool = True) -> Path:
    torch.manual_seed(0)
    model = create_model(
        "factorized_vit_tiny_patch16_224",
        img_size=32,
        depth=1,
        num_frames=4,
        causal=causal,
        labels=["a", "b"],
        options={"head_depth": 1},
    )
    return save_bundle(model, directory / f"{name}.safetensors", {"steps": 1})


def test_written_into_the_bundle_and_served_as_its_default(tmp_path: Path) -> None:
    models = tmp_path / "models"
    bundle = _live_bundle(models, "live")
    report = tmp_path / "bench.json"
    report.write_text(json.dumps({"machine": {"platform": "test"}, "bundle": ROWS}))
    argv = ["--bench", str(report), "--bundle", str(bundle)]

    assert main([*argv, "--check"]) == 1  # nothing recorded yet
    assert main([*argv, "--dry-run"]) == 0
    assert "live_budget" not in (read_bundle_config(bundle)[1] or {})
    assert main(argv) == 0
    assert main([*argv, "--check"]) == 0

    facts = (read_bundle_config(bundle)[1] or {})["live_budget"]
    assert facts["budget"] == {"threshold": 1.0}
    assert facts["gmac_ratio"] == 4.0 and facts["top1_lost_points"] == 2.3
    assert facts["top1_lost_ci95_high"] == 2.4
    assert (read_bundle_config(bundle)[1] or {})["steps"] == 1  # the other facts kept
    catalog = ModelCatalog.load(models, device="cpu")
    assert catalog.get("live").recommended_budget == {"threshold": 1.0}
    assert catalog.describe()[0]["recommended_budget"] == {"threshold": 1.0}


def test_only_a_live_model_with_a_valid_budget_recommends_one(tmp_path: Path) -> None:
    models = tmp_path / "models"
    update_bundle_training(
        _live_bundle(models, "whole_clip", causal=False),
        {"live_budget": {"budget": {"threshold": 1.0}}},
    )
    update_bundle_training(
        _live_bundle(models, "broken"), {"live_budget": {"budget": {"threshold": -2}}}
    )
    _live_bundle(models, "silent")
    catalog = ModelCatalog.load(models, device="cpu")
    assert {e.name: e.recommended_budget for e in catalog} == {
        "broken": None,
        "silent": None,
        "whole_clip": None,
    }


def test_the_shipped_live_bundle_records_what_its_benchmark_gives() -> None:
    assert main(["--check"]) == 0
