"""Writes the live budget a streaming bundle recommends, picked from a measurement.

A live session whose client names no budget gets ``VIDREC_DEFAULT_BUDGET`` when the deployment
sets one, else the budget its model's bundle recommends (``training["live_budget"]``), else a
quarter of the tokens. A threshold is on the scale of one model's features, so the
recommendation comes from that model's own sweep: the streaming section of
``vidrec bench eventful --bundle PATH`` (docs/eventful_stream_bench.json for the shipped live
bundle). The pick is the budget with the largest GMAC ratio whose per-window top-1 is at most
``--max-lost-points`` below the dense model's at the upper end of its 95% interval: the points
lost on 96 streams move by a point or two from one sample of streams to the next, so the point
estimate alone would reward the budget that was luckiest on this sample.

python scripts/recommend_live_budget.py                 # from docs/eventful_stream_bench.json
python scripts/recommend_live_budget.py --dry-run       # print the pick, write nothing
python scripts/recommend_live_budget.py --check         # exit 1 if the bundle records another
python scripts/recommend_live_budget.py --bench B.json --bundle my_live.safetensors
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model_core.checkpoint import read_bundle_config, update_bundle_training

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "eventful_stream_bench.json"
MAX_LOST_POINTS = 2.5  # at the upper end of the 95% interval

_FRACTION = re.compile(r"^top ([0-9.]+)%$")
_NUMBER = r"[0-9.eE+-]+"
_THRESHOLD = re.compile(rf"^threshold ({_NUMBER})$")
_GATE_THRESHOLDS = re.compile(rf"^threshold ({_NUMBER})/({_NUMBER})/({_NUMBER})$")


def budget_of_label(label: str) -> dict[str, Any]:
    """The JSON budget a row of ``vidrec bench eventful`` names: ``keep-all``, ``top 25%``,
    ``threshold 1``, ``threshold 0.75/1.5/1.5`` (one per gate: qkv, proj, mlp)."""
    if label == "keep-all":
        return {"keep_all": True}
    if match := _FRACTION.match(label):
        return {"fraction": float(match.group(1)) / 100}
    if match := _THRESHOLD.match(label):
        return {"threshold": float(match.group(1))}
    if match := _GATE_THRESHOLDS.match(label):
        return {"threshold": [float(g) for g in match.groups()]}
    raise ValueError(f"not a budget label of the eventful benchmark: {label!r}")


def worst_loss(row: Mapping[str, Any]) -> float:
    """The upper end of a row's 95% interval of points lost (the point estimate for a report
    written before the benchmark gave intervals)."""
    interval = row.get("top1_lost_ci95")
    return float(interval[1]) if interval else float(row["top1_lost_points"])


def pick(rows: Sequence[Mapping[str, Any]], max_lost_points: float) -> Mapping[str, Any]:
    """The row with the largest GMAC ratio among those whose 95% interval of points lost ends
    at most ``max_lost_points`` above zero.

    Raises:
        ValueError: no row is within the bound.
    """
    within = [r for r in rows if worst_loss(r) <= max_lost_points]
    if not within:
        raise ValueError(f"no measured budget loses at most {max_lost_points} points")
    return max(within, key=lambda r: (r["gmac_ratio"], -worst_loss(r)))


def recommendation(report: Mapping[str, Any], max_lost_points: float) -> dict[str, Any]:
    """What the bundle records under ``live_budget``: the budget and the evidence for it."""
    rows = report.get("bundle")
    if not rows:
        raise ValueError("the report has no streaming-model section (run it with --bundle)")
    row = pick(rows, max_lost_points)
    return {
        "budget": budget_of_label(row["budget"]),
        "rule": (
            f"largest GMAC ratio losing at most {max_lost_points:g} points of per-window top-1 "
            "at the upper end of the 95% interval"
        ),
        "gmac_ratio": round(row["gmac_ratio"], 3),
        "top1_lost_points": round(row["top1_lost_points"], 2),
        "top1_lost_ci95_high": round(worst_loss(row), 2),
        "dense_top1": round(row["dense_top1"], 4),
        "windows": row["windows"],
        "measured_on": report.get("machine", {}).get("platform"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH, help="a vidrec bench eventful JSON")
    parser.add_argument("--bundle", type=Path, help="the bundle (default: the report's bundle)")
    parser.add_argument("--max-lost-points", type=float, default=MAX_LOST_POINTS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the pick, write nothing")
    mode.add_argument("--check", action="store_true", help="exit 1 if the bundle records another")
    args = parser.parse_args(argv)

    report = json.loads(args.bench.read_text())
    facts = recommendation(report, args.max_lost_points)
    rows = report["bundle"]
    bundle = args.bundle or ROOT / rows[0]["bundle"]
    for row in rows:
        mark = "*" if budget_of_label(row["budget"]) == facts["budget"] else " "
        print(
            f"{mark} {row['budget']:<26} {row['gmac_ratio']:6.2f}x fewer GMACs, "
            f"{row['top1_lost_points']:5.1f} points lost (at most {worst_loss(row):.1f})"
        )
    print(f"{bundle.name}: {json.dumps(facts['budget'])} ({facts['rule']})")
    if args.check:
        _, training = read_bundle_config(bundle)
        recorded = (training or {}).get("live_budget")
        if recorded != facts:
            print(f"{bundle} records {recorded!r}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if not args.dry_run:
        update_bundle_training(bundle, {"live_budget": facts})
        print(f"wrote live_budget into {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
