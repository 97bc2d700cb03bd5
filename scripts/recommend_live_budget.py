"""Writes the live budget a streaming bundle recommends, picked from a measurement.

A live session whose client names no budget gets ``VIDREC_DEFAULT_BUDGET`` when the deployment
sets one, else the budget its model's bundle recommends (``training["live_budget"]``), else a
quarter of the tokens. A threshold is on the scale of one model's features, so the
recommendation comes from that model's own sweeps: the streaming section of
``vidrec bench eventful --bundle PATH`` (for the shipped live bundle its two tuning samples,
docs/eventful_stream_bench.json and docs/eventful_stream_bench_seed100.json, pooled over their
192 streams). The pick is the budget with the largest GMAC ratio whose per-window top-1 is at
most ``--max-points`` (1) below the dense model's and at most ``--max-lost-points`` (2) below it
at the upper end of its 95% interval: the issue's target, both halves of it. The points lost on
96 streams move by a point or two from one sample of streams to the next, so the point estimate
alone would reward the budget that was luckiest on a sample; the upper end alone (the rule
until the twenty-sixth session) picked, for the live weights of that session, a budget losing
1.2 points on the tuning streams.

python scripts/recommend_live_budget.py                 # from the two tuning reports in docs/
python scripts/recommend_live_budget.py --dry-run       # print the pick, write nothing
python scripts/recommend_live_budget.py --check         # exit 1 if the bundle records another
python scripts/recommend_live_budget.py --bench B.json --bundle my_live.safetensors

Held out (``--tuning T.json ... --heldout H.json``): the budget is chosen on the tuning reports
only (pooled over their streams, seeds below ``HELDOUT_SEED`` of benchmarks/eventful.py) by
``heldout_pick``: the largest GMAC ratio, at least ``--min-ratio``, whose pooled points lost are
at most ``--max-tuning-points`` and whose 95% interval ends at most ``--max-tuning-high``. Then
it is looked up once in the held-out report (disjoint samples from seed ``HELDOUT_SEED`` up, run
with ``--held-out --tuned-on`` the tuning reports), and written into the bundle only if there it
loses at most ``--target-points`` with the interval ending at most ``--target-high``; otherwise
the script says so and exits 2, writing nothing.

python scripts/recommend_live_budget.py --tuning T1.json T2.json --heldout H.json --dry-run
python scripts/recommend_live_budget.py --shipped --check   # the shipped bundle: held-out rule
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_core.checkpoint import read_bundle_config, update_bundle_training

ROOT = Path(__file__).resolve().parent.parent
# The shipped live bundle's two tuning samples (seeds 1000-1095 and 100-195), pooled.
BENCH = (
    ROOT / "docs" / "eventful_stream_bench.json",
    ROOT / "docs" / "eventful_stream_bench_seed100.json",
)
# Its held-out samples (seeds 21920-22303, four of 96): the budget it ships was written by the
# held-out rule below, so that is what --check compares with for it.
HELDOUT = (
    ROOT / "docs" / "eventful_heldout_21920.json",
    ROOT / "docs" / "eventful_heldout_22112.json",
)
MAX_LOST_POINTS = 2.0  # at the upper end of the 95% interval: the bound
MAX_POINTS = 1.0  # the point estimate: the target

_FRACTION = re.compile(r"^top ([0-9.]+)%$")
_NUMBER = r"[0-9.eE+-]+"
_INPUT = rf"(?: input ({_NUMBER}))?"
_THRESHOLD = re.compile(rf"^threshold ({_NUMBER}){_INPUT}$")
_GATE_THRESHOLDS = re.compile(rf"^threshold ({_NUMBER})/({_NUMBER})/({_NUMBER}){_INPUT}$")


def budget_of_label(label: str) -> dict[str, Any]:
    """The JSON budget a row of ``vidrec bench eventful`` names: ``keep-all``, ``top 25%``,
    ``threshold 1``, ``threshold 0.75/1.5/1.5`` (one per gate: qkv, proj, mlp), either threshold
    form followed by ``input 3`` (the input gate's threshold)."""
    if label == "keep-all":
        return {"keep_all": True}
    if match := _FRACTION.match(label):
        return {"fraction": float(match.group(1)) / 100}
    budget: dict[str, Any]
    if match := _THRESHOLD.match(label):
        budget = {"threshold": float(match.group(1))}
    elif match := _GATE_THRESHOLDS.match(label):
        budget = {"threshold": [float(g) for g in match.groups()[:3]]}
    else:
        raise ValueError(f"not a budget label of the eventful benchmark: {label!r}")
    if match.groups()[-1] is not None:
        budget["input"] = float(match.groups()[-1])
    return budget


def worst_loss(row: Mapping[str, Any]) -> float:
    """The upper end of a row's 95% interval of points lost (the point estimate for a report
    written before the benchmark gave intervals)."""
    interval = row.get("top1_lost_ci95")
    return float(interval[1]) if interval else float(row["top1_lost_points"])


def pick(
    rows: Sequence[Mapping[str, Any]], max_lost_points: float, max_points: float | None = None
) -> Mapping[str, Any]:
    """The row with the largest GMAC ratio among those whose 95% interval of points lost ends
    at most ``max_lost_points`` above zero and, when ``max_points`` is given, whose points lost
    are at most that.

    Raises:
        ValueError: no row is within the bounds.
    """
    within = [
        r
        for r in rows
        if worst_loss(r) <= max_lost_points
        and (max_points is None or float(r["top1_lost_points"]) <= max_points)
    ]
    if not within:
        also = "" if max_points is None else f" ({max_points:g} at the point estimate)"
        raise ValueError(f"no measured budget loses at most {max_lost_points:g} points{also}")
    return max(within, key=lambda r: (r["gmac_ratio"], -worst_loss(r)))


def recommendation(
    report: Mapping[str, Any],
    max_lost_points: float,
    rows: Sequence[Mapping[str, Any]] = (),
    max_points: float | None = None,
    seeds: Sequence[range] = (),
) -> dict[str, Any]:
    """What the bundle records under ``live_budget``: the budget and the evidence for it, from
    ``report``'s rows or, when given, ``rows`` (several reports pooled by :func:`pool`, whose
    stream ``seeds`` the rule names)."""
    rows = rows or report.get("bundle") or []
    if not rows:
        raise ValueError("the report has no streaming-model section (run it with --bundle)")
    row = pick(rows, max_lost_points, max_points)
    point = "" if max_points is None else f"{max_points:g} point of per-window top-1, and "
    pooled = (
        f", on seeds {', '.join(f'{s.start}-{s.stop - 1}' for s in seeds)} pooled" if seeds else ""
    )
    return {
        "budget": budget_of_label(row["budget"]),
        "rule": (
            f"largest GMAC ratio losing at most {point}{max_lost_points:g} points"
            f"{'' if point else ' of per-window top-1'} at the upper end of the 95% interval"
            f"{pooled}"
        ),
        "gmac_ratio": round(row["gmac_ratio"], 3),
        "top1_lost_points": round(row["top1_lost_points"], 2),
        "top1_lost_ci95_high": round(worst_loss(row), 2),
        "dense_top1": round(row["dense_top1"], 4),
        "windows": row["windows"],
        "measured_on": report.get("machine", {}).get("platform"),
    }


# The held-out rule (see the module docstring); the target is the issue's.
MIN_RATIO = 4.0
MAX_TUNING_POINTS = 0.5
MAX_TUNING_HIGH = 1.5
TARGET_POINTS = 1.0
TARGET_HIGH = 2.0


def _bench_module() -> Any:
    """benchmarks/eventful.py (not an installed module): its seed ranges and bootstrap."""
    spec = importlib.util.spec_from_file_location("eventful_bench", ROOT / "benchmarks/eventful.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def pool(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The budgets every report measured, pooled over all their streams: points lost with a
    95% bootstrap interval over the streams (dense and budget paired per stream), GMAC ratio.

    Raises:
        ValueError: a report lacks the per-stream tallies (written before they were kept).
    """
    interval = _bench_module().stream_loss_interval
    labels = [r["budget"] for r in reports[0]["bundle"]]
    rows = []
    for label in labels:
        parts = [next((r for r in rep["bundle"] if r["budget"] == label), None) for rep in reports]
        if any(part is None for part in parts):
            continue
        if any("per_stream" not in part for part in parts):  # type: ignore[operator]
            raise ValueError("a report has no per-stream tallies: rerun it")
        tallies = {
            key: np.concatenate([part["per_stream"][key] for part in parts])  # type: ignore[index]
            for key in ("windows", "dense_right", "eventful_right")
        }
        streams = [len(part["per_stream"]["windows"]) for part in parts]  # type: ignore[index]
        dense = sum(n * p["dense_gmacs_per_frame"] for n, p in zip(streams, parts, strict=True))  # type: ignore[index]
        spent = sum(n * p["gmacs_per_frame"] for n, p in zip(streams, parts, strict=True))  # type: ignore[index]
        windows = tallies["windows"].sum()
        low, high = interval(tallies["dense_right"], tallies["eventful_right"], tallies["windows"])
        rows.append(
            {
                "budget": label,
                "streams": sum(streams),
                "windows": int(windows),
                "dense_top1": float(tallies["dense_right"].sum() / windows),
                "top1_lost_points": float(
                    100 * (tallies["dense_right"].sum() - tallies["eventful_right"].sum()) / windows
                ),
                "top1_lost_ci95": [low, high],
                "gmac_ratio": dense / spent,
            }
        )
    return rows


def heldout_pick(
    rows: Sequence[Mapping[str, Any]],
    min_ratio: float = MIN_RATIO,
    max_points: float = MAX_TUNING_POINTS,
    max_high: float = MAX_TUNING_HIGH,
) -> Mapping[str, Any]:
    """The tuning row with the largest GMAC ratio among those of at least ``min_ratio`` that
    lose at most ``max_points`` with the interval ending at most ``max_high``.

    Raises:
        ValueError: none qualifies.
    """
    within = [
        r
        for r in rows
        if r["gmac_ratio"] >= min_ratio
        and r["top1_lost_points"] <= max_points
        and worst_loss(r) <= max_high
    ]
    if not within:
        raise ValueError(
            f"no tuning budget of at least {min_ratio:g}x loses at most {max_points:g} points "
            f"with its interval ending at most {max_high:g}"
        )
    return max(within, key=lambda r: (r["gmac_ratio"], -worst_loss(r)))


def heldout_recommendation(
    tuning: Sequence[Mapping[str, Any]],
    heldout: Sequence[Mapping[str, Any]],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], bool]:
    """The budget picked on ``tuning``, its figures pooled over the ``heldout`` reports, and
    whether they meet the target.

    Raises:
        ValueError: a held-out report shares a seed with a tuning report or another held-out
            one, or was not run as held out, or did not measure the pick.
    """
    bench = _bench_module()
    tuned = [bench.report_seeds(report) for report in tuning]
    for seeds in tuned:
        bench.check_seeds(bench.SeedPlan(seeds.start, len(seeds)), held_out=False)
    held: list[range] = []
    for report in heldout:
        if not report["config"].get("held_out"):
            raise ValueError("a held-out report was not run with --held-out")
        seeds = bench.report_seeds(report)
        # apart from the tuning seeds and from the other held-out reports
        bench.check_seeds(bench.SeedPlan(seeds.start, len(seeds)), True, [*tuned, *held])
        held.append(seeds)
    choice = heldout_pick(
        pool(tuning), args.min_ratio, args.max_tuning_points, args.max_tuning_high
    )
    row = next((r for r in pool(heldout) if r["budget"] == choice["budget"]), None)
    if row is None:
        raise ValueError(f"the held-out reports did not all measure {choice['budget']!r}")
    samples = [
        sample
        for report in heldout
        for r in report["bundle"]
        if r["budget"] == choice["budget"]
        for sample in r.get("samples", [])
    ]
    meets = (
        row["gmac_ratio"] >= args.min_ratio
        and row["top1_lost_points"] <= args.target_points
        and worst_loss(row) <= args.target_high
    )
    facts = {
        "budget": budget_of_label(row["budget"]),
        "rule": (
            f"chosen on tuning seeds {', '.join(f'{s.start}-{s.stop - 1}' for s in tuned)}: "
            f"largest GMAC ratio of at least {args.min_ratio:g}x losing at most "
            f"{args.max_tuning_points:g} points of per-window top-1, 95% interval ending at most "
            f"{args.max_tuning_high:g}; figures from held-out seeds "
            f"{', '.join(f'{s.start}-{s.stop - 1}' for s in held)}"
        ),
        "gmac_ratio": round(row["gmac_ratio"], 3),
        "top1_lost_points": round(row["top1_lost_points"], 2),
        "top1_lost_ci95_high": round(worst_loss(row), 2),
        "dense_top1": round(row["dense_top1"], 4),
        "windows": row["windows"],
        "samples": [
            {
                "seeds": sample["seeds"],
                "top1_lost_points": round(sample["top1_lost_points"], 2),
                "top1_lost_ci95": [round(v, 2) for v in sample["top1_lost_ci95"]],
                "gmac_ratio": round(sample["gmac_ratio"], 3),
            }
            for sample in samples
        ],
        "tuning": {
            "top1_lost_points": round(choice["top1_lost_points"], 2),
            "top1_lost_ci95_high": round(worst_loss(choice), 2),
            "gmac_ratio": round(choice["gmac_ratio"], 3),
            "streams": choice["streams"],
        },
        "measured_on": heldout[0].get("machine", {}).get("platform"),
    }
    return facts, meets


def _main_heldout(args: argparse.Namespace) -> int:
    tuning = [json.loads(path.read_text()) for path in args.tuning]
    heldout = [json.loads(path.read_text()) for path in args.heldout]
    for row in pool(tuning):
        print(
            f"  tuning {row['budget']:<26} {row['gmac_ratio']:6.2f}x fewer GMACs, "
            f"{row['top1_lost_points']:5.2f} points lost ({row['top1_lost_ci95'][0]:.2f} to "
            f"{row['top1_lost_ci95'][1]:.2f}, {row['streams']} streams)"
        )
    try:
        facts, meets = heldout_recommendation(tuning, heldout, args)
    except ValueError as exc:
        print(f"nothing picked: {exc}", file=sys.stderr)
        return 2
    print(f"held out: {json.dumps(facts, indent=1)}")
    bundle = args.bundle or ROOT / heldout[0]["bundle"][0]["bundle"]
    if args.check:
        _, training = read_bundle_config(bundle)
        recorded = (training or {}).get("live_budget")
        if recorded != facts:
            print(f"{bundle} records {recorded!r}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if not meets:
        print(
            f"not written: on the held-out streams it misses the target (at least "
            f"{args.min_ratio:g}x, at most {args.target_points:g} points lost, interval ending "
            f"at most {args.target_high:g})",
            file=sys.stderr,
        )
        return 2
    if not args.dry_run:
        update_bundle_training(bundle, {"live_budget": facts})
        print(f"wrote live_budget into {bundle}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bench",
        type=Path,
        nargs="+",
        default=list(BENCH),
        help="vidrec bench eventful JSON reports (several: pooled over their streams)",
    )
    parser.add_argument("--bundle", type=Path, help="the bundle (default: the report's bundle)")
    parser.add_argument(
        "--max-lost-points",
        type=float,
        default=MAX_LOST_POINTS,
        help="bound on the points lost at the upper end of the 95%% interval",
    )
    parser.add_argument(
        "--max-points", type=float, default=MAX_POINTS, help="bound on the points lost"
    )
    parser.add_argument("--tuning", type=Path, nargs="+", help="tuning reports (held-out rule)")
    parser.add_argument(
        "--heldout", type=Path, nargs="+", help="held-out reports, pooled (with --tuning)"
    )
    parser.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    parser.add_argument("--max-tuning-points", type=float, default=MAX_TUNING_POINTS)
    parser.add_argument("--max-tuning-high", type=float, default=MAX_TUNING_HIGH)
    parser.add_argument("--target-points", type=float, default=TARGET_POINTS)
    parser.add_argument("--target-high", type=float, default=TARGET_HIGH)
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="the shipped live bundle's reports: --tuning docs/eventful_stream_bench*.json "
        "--heldout docs/eventful_heldout_21920.json docs/eventful_heldout_22112.json",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the pick, write nothing")
    mode.add_argument("--check", action="store_true", help="exit 1 if the bundle records another")
    args = parser.parse_args(argv)
    if args.shipped:
        if args.tuning or args.heldout:
            parser.error("--shipped names the reports itself")
        args.tuning, args.heldout = list(BENCH), list(HELDOUT)
    if bool(args.tuning) != bool(args.heldout):
        parser.error("--tuning and --heldout go together")
    if args.tuning:
        return _main_heldout(args)

    reports = [json.loads(path.read_text()) for path in args.bench]
    report = reports[0]
    pooled = pool(reports) if len(reports) > 1 else []
    seeds = [_bench_module().report_seeds(r) for r in reports] if pooled else []
    facts = recommendation(report, args.max_lost_points, pooled, args.max_points, seeds)
    rows = pooled or report["bundle"]
    bundle = args.bundle or ROOT / report["bundle"][0]["bundle"]
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
