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
        ("threshold 1.5 input 3", {"threshold": 1.5, "input": 3.0}),  # with an input gate
        ("threshold 1/2/2 input 0.5", {"threshold": [1.0, 2.0, 2.0], "input": 0.5}),
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


def test_the_point_estimate_is_bounded_too() -> None:
    # threshold 1.25's interval is within 3 points but it loses 1.0: a 0.9 bound leaves it out.
    assert pick(ROWS, 3.0, max_points=1.0)["budget"] == "threshold 1.25"
    assert pick(ROWS, 3.0, max_points=0.9)["budget"] == "keep-all"
    with pytest.raises(ValueError, match=r"at most 1 points \(0.5 at the point estimate\)"):
        pick(ROWS[1:], 1.0, max_points=0.5)


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
    argv = ["--bench", str(report), "--bundle", str(bundle), "--max-lost-points", "2.5"]
    argv += ["--max-points", "2.5"]

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
    """Its budget was chosen on the tuning reports and written after the held-out ones met the
    target: the held-out rule over those reports gives exactly what it records."""
    assert main(["--shipped", "--check"]) == 0


def _report(seed: int, lost: dict[str, int], held_out: bool = False) -> dict[str, Any]:
    """A report of 20 streams of 100 windows from ``seed``: dense right on 80 of each, and each
    budget right on ``lost[budget]`` fewer on every second stream (so its loss varies)."""
    streams, ratios = 20, {"threshold 1": 3.0, "threshold 2": 4.5, "threshold 3": 6.0}
    rows = []
    for budget, fewer in lost.items():
        right = [80 - fewer * (s % 2) for s in range(streams)]
        points = 100 * (80 * streams - sum(right)) / (100 * streams)
        rows.append(
            {
                "bundle": "b.safetensors",
                "budget": budget,
                "windows": 100 * streams,
                "dense_top1": 0.8,
                "gmac_ratio": ratios[budget],
                "dense_gmacs_per_frame": 0.1,
                "gmacs_per_frame": 0.1 / ratios[budget],
                "top1_lost_points": points,
                "top1_lost_ci95": [points - 1, points + 1],
                "samples": [
                    {
                        "seeds": [seed, seed + streams - 1],
                        "top1_lost_points": points,
                        "top1_lost_ci95": [points - 1, points + 1],
                        "gmac_ratio": ratios[budget],
                    }
                ],
                "per_stream": {
                    "windows": [100] * streams,
                    "dense_right": [80] * streams,
                    "eventful_right": right,
                },
            }
        )
    config = {"bundle_seed": seed, "bundle_streams": streams, "bundle_samples": 1}
    return {"machine": {"platform": "test"}, "config": {**config, "held_out": held_out},
            "bundle": rows}  # fmt: skip


def test_held_out_pick_is_chosen_on_tuning_streams_and_written_only_if_it_holds(
    tmp_path: Path,
) -> None:
    bundle = _live_bundle(tmp_path, "live")
    # Tuning: threshold 2 (4.5x) loses 0 points, threshold 3 (6x) 2.5 points: 2 is picked.
    tuning = [_report(10_000, {"threshold 1": 0, "threshold 2": 0, "threshold 3": 5})]
    paths = []
    for k, lost in enumerate((0, 1)):  # held out: threshold 2 loses 0, then 0.5 points
        report = _report(20_000 + 20 * k, {"threshold 2": lost}, held_out=True)
        paths.append(tmp_path / f"held{k}.json")
        paths[-1].write_text(json.dumps(report))
    (tmp_path / "tune.json").write_text(json.dumps(tuning[0]))
    argv = ["--tuning", str(tmp_path / "tune.json"), "--heldout", *map(str, paths)]
    argv += ["--bundle", str(bundle)]
    assert main(argv) == 0
    facts = (read_bundle_config(bundle)[1] or {})["live_budget"]
    assert facts["budget"] == {"threshold": 2.0}
    assert facts["top1_lost_points"] == 0.25  # pooled over both held-out reports
    assert [s["seeds"] for s in facts["samples"]] == [[20_000, 20_019], [20_020, 20_039]]
    assert facts["tuning"]["top1_lost_points"] == 0.0 and facts["tuning"]["streams"] == 20
    assert "10000-10019" in facts["rule"] and "20000-20019, 20020-20039" in facts["rule"]
    assert main([*argv, "--check"]) == 0

    # The same pick, losing 4 points on the second held-out report: it misses, nothing is written.
    paths[1].write_text(json.dumps(_report(20_020, {"threshold 2": 8}, held_out=True)))
    fresh = _live_bundle(tmp_path / "other", "live")
    assert main([*argv[:-1], str(fresh)]) == 2
    assert "live_budget" not in (read_bundle_config(fresh)[1] or {})


def test_held_out_reports_must_stay_apart_from_tuning_and_each_other(tmp_path: Path) -> None:
    tune = tmp_path / "tune.json"
    tune.write_text(json.dumps(_report(10_000, {"threshold 2": 0})))
    cases = {
        "tuning range": [_report(100, {"threshold 2": 0}, held_out=True)],
        "--held-out": [_report(20_000, {"threshold 2": 0}, held_out=False)],
        "overlap": [_report(20_000, {"threshold 2": 0}, held_out=True)] * 2,
    }
    for name, reports in cases.items():
        paths = []
        for k, report in enumerate(reports):
            paths.append(tmp_path / f"{name}{k}.json")
            paths[-1].write_text(json.dumps(report))
        argv = ["--tuning", str(tune), "--heldout", *map(str, paths), "--dry-run"]
        assert main(argv) == 2, name
