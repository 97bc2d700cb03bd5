"""``vidrec bench eventful --bundle`` on a tiny configuration: labels of a trained streaming
model on generated streams, against the ground truth and the dense model."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "model_core" / "zoo" / "bundles" / "factorized_causal_tiny_motion112.safetensors"
VIDREC = Path(sys.executable).parent / "vidrec"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eventful_bench", ROOT / "benchmarks/eventful.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_window_truth_is_the_most_frequent_class_ties_to_the_latest() -> None:
    window_truth = _script().window_truth
    assert window_truth(np.array([3, 3, 3, 5, 5, 0, 0, 0])) == 0  # 3 and 0 tie: 0 came last
    assert window_truth(np.array([4, 4, 4, 4, 4, 2, 2, 2])) == 4
    assert window_truth(np.array([7])) == 7


def test_threshold_arguments_and_their_labels() -> None:
    script = _script()
    from model_core.eventful import Threshold

    assert script.threshold_arg("1") == Threshold(1.0)
    assert script.threshold_arg("0.75/2/1.5") == Threshold((0.75, 2.0, 1.5))
    assert script.threshold_label(Threshold(1.0)) == "threshold 1"
    assert script.threshold_label(Threshold((0.75, 2.0, 1.5))) == "threshold 0.75/2/1.5"
    assert script.threshold_arg("1.5@3") == Threshold(1.5, input=3.0)
    assert script.threshold_arg("1/2/2@0.5") == Threshold((1.0, 2.0, 2.0), input=0.5)
    assert script.threshold_label(Threshold(1.5, input=3.0)) == "threshold 1.5 input 3"
    for bad in ("1/2", "-1", "a/b/c", "1@-2", "1@x"):
        with pytest.raises(argparse.ArgumentTypeError, match="QKV/PROJ/MLP"):
            script.threshold_arg(bad)


def test_backbone_rows_report_the_median_and_range_of_repeated_passes() -> None:
    script = _script()
    from model_core.eventful import KEEP_ALL, TopFraction

    stream = script.synthetic_stream(4, 64)
    budgets = {"keep-all": KEEP_ALL, "top 25%": TopFraction(0.25)}
    keep, quarter = script.backbone_rows("factorized_vit_tiny_patch16_224", stream, budgets, 3)
    for row in (keep, quarter):
        assert row["repeats"] == 3
        low, high = row["speedup_range"]
        assert 0 < low <= row["speedup"] <= high
        assert row["dense_ms"] > 0 and row["eventful_ms"] > 0
    # Every pass starts a fresh session: keep-all stays the dense model, at dense cost.
    assert keep["gmac_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert keep["final_rel_err"] < 1e-5
    assert quarter["gmac_ratio"] > 1.5 and quarter["final_rel_err"] > keep["final_rel_err"]


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLE.is_file(), reason="the shipped streaming bundle is not there")
def test_bundle_section_writes_ground_truth_and_agreement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        str(VIDREC), "bench", "eventful", "--threads", "1", "--skip", "backbones", "batching",
        "--bundle", str(BUNDLE), "--bundle-streams", "2", "--bundle-frames", "24",
        "--bundle-fractions", "0.25", "--bundle-thresholds", "1", "0.5/2/2", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert "backbones" not in report and "batching" not in report
    keep, quarter, threshold, per_gate = report["bundle"]
    assert [r["budget"] for r in report["bundle"]] == [
        "keep-all", "top 25%", "threshold 1", "threshold 0.5/2/2"
    ]  # fmt: skip
    assert report["config"]["bundle_thresholds"] == ["threshold 1", "threshold 0.5/2/2"]
    for row in (keep, quarter, threshold, per_gate):
        assert row["windows"] == 2 * 24 // 4  # stride = half the 8-frame window
        assert 0 <= row["dense_top1"] <= 1 and 0 <= row["eventful_top1"] <= 1
        assert row["dense_top1"] == keep["dense_top1"]  # one dense run for every budget
        assert row["dense_gmacs_per_frame"] == pytest.approx(keep["dense_gmacs_per_frame"])
        assert row["wall_clock_ratio"] > 0
        # The bootstrap interval (over whole streams) holds the point estimate.
        low, high = row["top1_lost_ci95"]
        assert low <= row["top1_lost_points"] + 1e-9 and row["top1_lost_points"] <= high + 1e-9
    # Keep-all is the dense model: the same labels at the same compute.
    assert keep["top1_agreement"] == 1.0 and keep["eventful_top1"] == keep["dense_top1"]
    assert keep["top1_lost_ci95"] == [0.0, 0.0]
    assert keep["gmac_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert quarter["gmac_ratio"] > 1.5
    assert quarter["gmacs_per_frame"] < keep["gmacs_per_frame"]
    # A threshold recomputes only what drifted: less than keep-all on these noisy streams.
    assert threshold["gmacs_per_frame"] < keep["gmacs_per_frame"]
    assert out.with_suffix(".png").is_file() or "matplotlib not installed" in result.stdout


def test_tuning_and_held_out_seeds_are_kept_apart() -> None:
    script = _script()
    plan, start = script.SeedPlan, script.HELDOUT_SEED
    assert list(plan(10, 3, 2).seeds) == [10, 11, 12, 13, 14, 15]
    assert list(plan(10, 3, 2).sample_seeds(1)) == [13, 14, 15]
    script.check_seeds(plan(start - 8, 4, 2), held_out=False)  # ends right below the line
    script.check_seeds(plan(start, 96, 4), held_out=True, tuned_on=[range(100, 196)])
    with pytest.raises(ValueError, match="reach into the held-out range"):
        script.check_seeds(plan(start - 8, 4, 3), held_out=False)
    with pytest.raises(ValueError, match="reach into the tuning range"):
        script.check_seeds(plan(start - 1, 4), held_out=True)
    with pytest.raises(ValueError, match="overlap the tuning seeds"):
        script.check_seeds(plan(start, 4, 2), held_out=True, tuned_on=[range(start + 7, start + 9)])
    # The command line refuses before it loads anything.
    with pytest.raises(SystemExit, match="reach into the tuning range"):
        script.main(["--skip", "backbones", "batching", "--held-out", "--bundle-seed", "100"])


def test_the_loss_interval_resamples_paired_streams() -> None:
    interval = _script().stream_loss_interval
    windows = np.full(40, 10)
    dense = np.full(40, 8)
    assert interval(dense, dense.copy(), windows) == (0.0, 0.0)  # the same outcomes: no loss
    worse = dense - np.arange(40) % 3  # loses 0, 1 or 2 windows of 10 per stream
    low, high = interval(dense, worse, windows)
    assert 0 < low < 100 * (dense - worse).sum() / windows.sum() < high < 20


@pytest.mark.skipif(not BUNDLE.is_file(), reason="the shipped streaming bundle is not there")
def test_bundle_rows_pool_disjoint_samples_and_keep_per_stream_tallies() -> None:
    script = _script()
    from model_core.eventful import Threshold

    rows = script.bundle_rows(
        str(BUNDLE), {"threshold 2": Threshold(2.0)}, streams=1, frames=16, seed=50, samples=2
    )
    (row,) = rows
    assert [s["seeds"] for s in row["samples"]] == [[50, 50], [51, 51]]
    assert row["per_stream"]["windows"] == [4, 4]  # stride 4 over 16 frames, per stream
    assert row["windows"] == sum(s["windows"] for s in row["samples"]) == 8
    tallies = row["per_stream"]
    assert row["top1_lost_points"] == pytest.approx(
        100 * (sum(tallies["dense_right"]) - sum(tallies["eventful_right"])) / 8
    )
    for part in (row, *row["samples"]):
        low, high = part["top1_lost_ci95"]
        assert low <= part["top1_lost_points"] + 1e-9 <= high + 2e-9
        assert part["gmac_ratio"] > 1
    json.dumps(rows)  # the report is plain JSON
