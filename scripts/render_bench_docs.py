"""Regenerates the eventful tables in docs/BENCHMARKS.md from the JSON the benchmark wrote, and
the orientation-check table in docs/DATASET.md from the JSON ``scripts/orientation_check.py`` wrote.

``vidrec bench eventful`` writes docs/eventful_bench.json (backbones and batching) and, with
``--bundle``, docs/eventful_stream_bench.json (the streaming model) and
docs/eventful_stream_bench_seed100.json (the same model on other streams); the tables in the
doc are rendered from those files, so no figure is typed in by hand. docs/orientation_check.json
(every model on every view), docs/orientation_check_ramp.json (the ViT on the shifted crop, with
each head and shift curriculum), docs/orientation_check_chain.json (the ViT through the shifted
crop, then the whole frame) and docs/orientation_check_frame_patch.json (the whole frame from
scratch) give the three tables in DATASET.md, "A model built to see it"; and
docs/turn_supervision_runs.json (``scripts/training_records.py`` over the bundles of the turn
supervision runs) its table in "The turn learned"; docs/vast_readout_probe.json
(``scripts/readout_probe.py``) and docs/vast_readout_runs.json the two tables in "VAST's readout".

python scripts/render_bench_docs.py          # rewrite the tables in place
python scripts/render_bench_docs.py --check  # exit 1 if the doc is stale (the tests do this)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from doc_sections import Section, update_doc

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "BENCHMARKS.md"
DATASET_DOC = DOCS / "DATASET.md"
ORIENTATION_MODELS = {"cnn": "CNN", "vit": "ViT-Ti, 16-pixel patches"}
ORIENTATION_READOUTS = {"cls": "the CLS token", "patch": "the patch under the actor's centre"}
ORIENTATION_VIEWS = {"crop": "centred crop", "shifted": "shifted crop", "frame": "whole frame"}
MiB = 1024 * 1024


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / name).read_text())
    return data


def _signed(value: float) -> str:
    return f"{value:.1f}".replace("-", "−")  # a typographic minus, as the prose writes it


def _memory(size: int) -> str:
    return f"{size / 1024 / MiB:.2f} GiB" if size >= 1024 * MiB else f"{size / MiB:.1f} MiB"


def backbone_table() -> list[str]:
    lines = [
        "| model | budget | dense ms/frame | eventful ms/frame | wall-clock speed-up "
        "| lowest–highest pass | GMACs/frame | GMAC ratio | feature error |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _load("eventful_bench.json")["backbones"]:
        model = "ViT-S/16" if "small" in r["model"] else "ViT-B/16"
        low, high = r["speedup_range"]
        lines.append(
            f"| {model} | {r['budget']} | {r['dense_ms']:.0f} | {r['eventful_ms']:.0f} "
            f"| {r['speedup']:.2f}× | {low:.2f}–{high:.2f}× | {r['gmacs']:.2f} "
            f"| {r['gmac_ratio']:.2f}× | {r['final_rel_err']:.2g} |"
        )
    return lines


def batching_table() -> list[str]:
    lines = [
        "| sessions | batched frames/s | one by one frames/s | speed-up | pool memory |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in _load("eventful_bench.json")["batching"]:
        lines.append(
            f"| {r['sessions']} | {r['batched_fps']:.1f} | {r['one_by_one_fps']:.1f} "
            f"| {r['speedup']:.2f}× | {_memory(r['pool_bytes'])} |"
        )
    return lines


def stream_table() -> list[str]:
    rows = _load("eventful_stream_bench.json")["bundle"]
    dense = rows[0]
    lines = [
        f"Dense: {dense['dense_gmacs_per_frame']:.4f} GMACs/frame, "
        f"{dense['dense_ms_per_frame']:.1f} ms/frame, **{100 * dense['dense_top1']:.1f}%** "
        f"per-window top-1 against the ground truth ({100 * dense['dense_top1_pure']:.1f}% on "
        f"pure windows; {dense['windows']} windows, {dense['pure_windows']} pure).",
        "",
        "| budget | GMACs/frame | GMAC ratio | eventful ms/frame | wall-clock ratio "
        "| agreement with dense | eventful top-1 | top-1 lost (points) | 95% interval "
        "| top-1, pure windows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["top1_lost_ci95"]
        lines.append(
            f"| {r['budget']} | {r['gmacs_per_frame']:.4f} | {r['gmac_ratio']:.2f}× "
            f"| {r['eventful_ms_per_frame']:.2f} | {r['wall_clock_ratio']:.2f}× "
            f"| {100 * r['top1_agreement']:.1f}% | {100 * r['eventful_top1']:.1f}% "
            f"| {_signed(r['top1_lost_points'])} | {_signed(low)} to {_signed(high)} "
            f"| {100 * r['eventful_top1_pure']:.1f}% |"
        )
    return lines


def _pooled(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """Points lost and GMAC ratio of one budget over two samples of streams, each weighted by
    its windows (a window is as many frames in both)."""
    wa, wb = a["windows"], b["windows"]
    lost = (a["top1_lost_points"] * wa + b["top1_lost_points"] * wb) / (wa + wb)
    dense = a["dense_gmacs_per_frame"] * wa + b["dense_gmacs_per_frame"] * wb
    spent = a["gmacs_per_frame"] * wa + b["gmacs_per_frame"] * wb
    return lost, dense / spent


def first_streams_table() -> list[str]:
    """The check on the streams the per-gate thresholds were chosen on (seeds 100 to 195), with
    each budget over both samples where the main sweep measured it too."""
    data = _load("eventful_stream_bench_seed100.json")
    rows = data["bundle"]
    main_rows = {r["budget"]: r for r in _load("eventful_stream_bench.json")["bundle"]}
    lines = [
        f"Streams: seeds {data['config']['bundle_seed']} to "
        f"{data['config']['bundle_seed'] + data['config']['bundle_streams'] - 1}; dense "
        f"per-window top-1 **{100 * rows[0]['dense_top1']:.1f}%** ({rows[0]['windows']} windows).",
        "",
        "| budget | GMAC ratio | agreement with dense | top-1 lost (points) | 95% interval "
        "| both samples: points lost | both samples: GMAC ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["top1_lost_ci95"]
        both = "| — | — |"
        if r["budget"] in main_rows:
            lost, ratio = _pooled(main_rows[r["budget"]], r)
            both = f"| {_signed(lost)} | {ratio:.2f}× |"
        lines.append(
            f"| {r['budget']} | {r['gmac_ratio']:.2f}× | {100 * r['top1_agreement']:.1f}% "
            f"| {_signed(r['top1_lost_points'])} | {_signed(low)} to {_signed(high)} {both}"
        )
    return lines


def _r2_cell(r2: list[float]) -> str:
    # round first so that a tiny negative prints as 0.000, not −0.000
    return " / ".join(f"{round(v, 3) + 0.0:.3f}".replace("-", "−") for v in r2)


def orientation_table() -> list[str]:
    """R² of sine / cosine per model and view, from docs/orientation_check.json."""
    r2 = {(row["model"], row["view"]): row["r2"] for row in _load("orientation_check.json")["rows"]}
    lines = [
        "| model | " + " | ".join(ORIENTATION_VIEWS.values()) + " |",
        "|---|" + "---:|" * len(ORIENTATION_VIEWS),
    ]
    for model, label in ORIENTATION_MODELS.items():
        cells = [_r2_cell(r2[model, view]) for view in ORIENTATION_VIEWS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def orientation_ramp_table() -> list[str]:
    """R² of sine / cosine of the ViT on the shifted crop per head and shift curriculum, from
    docs/orientation_check_ramp.json."""
    rows = _load("orientation_check_ramp.json")["rows"]
    r2 = {(row["readout"], row["shift_ramp"]): row["r2"] for row in rows}
    ramps = sorted({ramp for _, ramp in r2})
    headers = [
        f"shift grown over the first {ramp:.0%} of the steps"
        if ramp
        else "full shift from the start"
        for ramp in ramps
    ]
    (steps,) = {row["steps"] for row in rows}
    first = f"ViT-Ti on the shifted crop, {steps} steps: the head reads"
    lines = [f"| {first} | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(ramps)]
    for readout, label in ORIENTATION_READOUTS.items():
        cells = [_r2_cell(r2[readout, ramp]) for ramp in ramps]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def orientation_chain_table() -> list[str]:
    """R² of the ViT with the patch head through a chain of views (each from the weights the
    one before ended with), then on the last view from scratch, from
    docs/orientation_check_chain.json and docs/orientation_check_frame_patch.json."""
    chain = _load("orientation_check_chain.json")["rows"]
    (scratch,) = _load("orientation_check_frame_patch.json")["rows"]
    (steps,) = {row["steps"] for row in [*chain, scratch]}
    lines = [
        f"| ViT-Ti, the patch head, {steps} steps a view | R² sine / cosine |",
        "|---|---:|",
    ]
    for row in [*chain, scratch]:
        label = ORIENTATION_VIEWS[row["view"]]
        if row["shift_ramp"]:
            label += f", shift grown over the first {row['shift_ramp']:.0%} of the steps"
        label += ", from the row above's weights" if row["started_from"] else ", from scratch"
        lines.append(f"| {label} | {_r2_cell(row['r2'])} |")
    return lines


def runs_table(name: str, readout: bool = False) -> list[str]:
    """Every stage of a set of training runs as its bundle recorded it, from docs/``name``
    (``scripts/training_records.py``); ``readout`` adds what the head read."""
    readout_head, readout_rule = ("| head read ", "---|") if readout else ("", "")
    lines = [
        f"| run | family | started from {readout_head}| steps × batch | lr | H.264 share "
        "| trained on | held-out top-1 | rotation clips right |",
        f"|---|---|---|{readout_rule}---:|---:|---:|---|---:|---:|",
    ]
    for r in _load(name)["rows"]:
        device = "GPU" if str(r["device"]).startswith("cuda") else "CPU"
        codec = "" if r["codec"] is None else f"{r['codec']:.0%}"
        read = f"| {READOUT_WORDS[r['readout']]} " if readout else ""
        lines.append(
            f"| `{r['run']}` | {r['model']} | {r['start']} {read}| {r['steps']} × {r['batch']} "
            f"| {r['lr']:g} | {codec} | {device} | {r['top1']:.1%} ({r['heldout_clips']}) "
            f"| {r['rotation_right']:.0%} |"
        )
    return lines


def readout_probe_table() -> list[str]:
    """Ridge-probe accuracy of the turn on each block's tokens, from docs/vast_readout_probe.json
    (``scripts/readout_probe.py``)."""
    rows = _load("vast_readout_probe.json")["rows"]
    lines = [
        "| model | tokens | "
        + " | ".join(f"block {i + 1}" for i in range(rows[0]["blocks"]))
        + " | final norm | pooled: mean / max |",
        "|---|---|" + "---:|" * (rows[0]["blocks"] + 2),
    ]
    for r in rows:
        name = f"`{r['run']}` ({r['family']})"
        for tokens, key in (("actor patch", "actor_patch"), ("CLS", "cls")):
            cells = " | ".join(f"{v:.0%}" for v in r[key])
            pooled = f"{r['patch_mean']:.0%} / {r['patch_max']:.0%}" if key == "cls" else ""
            lines.append(f"| {name} | {tokens} | {cells} | {pooled} |")
    return lines


READOUT_WORDS = {"cls": "CLS token", "patch_max": "max over patches"}


def _section(name: str, render: Any) -> Section:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return start, end, lambda: "\n".join([start, *render(), end])


SECTIONS = [
    _section("eventful-backbones", backbone_table),
    _section("eventful-batching", batching_table),
    _section("eventful-stream", stream_table),
    _section("eventful-stream-first", first_streams_table),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    args = parser.parse_args()
    script = "scripts/render_bench_docs.py"
    status = update_doc(DOC, SECTIONS, check=args.check, script=script)
    orientation = [
        _section("orientation-check", orientation_table),
        _section("orientation-ramp", orientation_ramp_table),
        _section("orientation-chain", orientation_chain_table),
        _section("turn-runs", lambda: runs_table("turn_supervision_runs.json")),
        _section("vast-readout-probe", readout_probe_table),
        _section("vast-readout-runs", lambda: runs_table("vast_readout_runs.json", readout=True)),
    ]
    return status or update_doc(DATASET_DOC, orientation, check=args.check, script=script)


if __name__ == "__main__":
    raise SystemExit(main())
