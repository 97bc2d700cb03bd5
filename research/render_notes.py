"""Regenerates the tables of research/NOTES.md from the JSON the research scripts wrote.

orientation_check.json (every model on every view), orientation_check_ramp.json
(the ViT on the shifted crop, with each head and shift curriculum), orientation_check_chain.json
(the ViT through the shifted crop, then the whole frame) and orientation_check_frame_patch.json
(the whole frame from scratch), all written by ``recipes/orientation_check.py``, give the three
tables of "A model built to see it"; turn_supervision_runs.json
(``research/training_records.py`` over the bundles of the turn supervision runs) the table of
"The turn learned"; vast_readout_probe.json (``research/readout_probe.py``) and
vast_readout_runs.json the two tables of "VAST's readout".

python research/render_notes.py          # rewrite the tables in place
python research/render_notes.py --check  # exit 1 if the notes are stale (the tests do this)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
from doc_sections import Section, update_doc  # noqa: E402

DATA = HERE / "data"
NOTES = HERE / "NOTES.md"
ORIENTATION_MODELS = {"cnn": "CNN", "vit": "ViT-Ti, 16-pixel patches"}
ORIENTATION_READOUTS = {"cls": "the CLS token", "patch": "the patch under the actor's centre"}
ORIENTATION_VIEWS = {"crop": "centred crop", "shifted": "shifted crop", "frame": "whole frame"}
READOUT_WORDS = {"cls": "CLS token", "patch_max": "max over patches"}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def _r2_cell(r2: list[float]) -> str:
    # round first so that a tiny negative prints as 0.000, not −0.000
    return " / ".join(f"{round(v, 3) + 0.0:.3f}".replace("-", "−") for v in r2)


def orientation_table() -> list[str]:
    """R² of sine / cosine per model and view, from orientation_check.json."""
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
    orientation_check_ramp.json."""
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
    one before ended with), then on the last view from scratch, from orientation_check_chain.json
    and orientation_check_frame_patch.json."""
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
    """Every stage of a set of training runs as its bundle recorded it, from research/data/``name``
    (``research/training_records.py``); ``readout`` adds what the head read."""
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
    """Ridge-probe accuracy of the turn on each block's tokens, from vast_readout_probe.json
    (``research/readout_probe.py``)."""
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


def _section(name: str, render: Any) -> Section:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return start, end, lambda: "\n".join([start, *render(), end])


SECTIONS = [
    _section("orientation-check", orientation_table),
    _section("orientation-ramp", orientation_ramp_table),
    _section("orientation-chain", orientation_chain_table),
    _section("turn-runs", lambda: runs_table("turn_supervision_runs.json")),
    _section("vast-readout-probe", readout_probe_table),
    _section("vast-readout-runs", lambda: runs_table("vast_readout_runs.json", readout=True)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the notes are stale")
    args = parser.parse_args()
    return update_doc(NOTES, SECTIONS, check=args.check, script="research/render_notes.py")


if __name__ == "__main__":
    raise SystemExit(main())
