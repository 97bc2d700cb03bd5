"""Tabulates the training records of a set of bundles: every ``vidrec train`` stage in their
chains (a stage shared by several chains once), with its settings and the held-out score it
ended with. Nothing is re-run; the figures are what each run measured and recorded.

python research/training_records.py runs/*.safetensors \
    --json research/data/turn_supervision_runs.json
python research/training_records.py vast_runs/*.safetensors --family vast \
    --json research/data/vast_readout_runs.json

The JSONs' rows give the research/NOTES.md tables of the turn-supervision runs and of VAST's readout
(``research/render_notes.py``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from model_core.checkpoint import (
    CheckpointError,
    read_bundle_config,
    read_training_record,
    training_chain,
)

ROTATION = ("rotate_clockwise", "rotate_anticlockwise")
# The orientation check's command as its backbones record it: the shipped bundles' chains ran it
# from scripts/, where it lived until it moved to recipes/.
ORIENTATION_COMMANDS = (
    "python recipes/orientation_check.py",
    "python scripts/orientation_check.py",
)


def _output(command: str) -> str:
    """The name of the file a ``vidrec train`` command wrote, without its suffix."""
    words = shlex.split(command)
    return Path(words[words.index("--output") + 1]).stem


def _start(record: dict[str, Any]) -> str:
    """Where a stage started: scratch, the orientation backbone, or another run's output."""
    init = record.get("init")
    if not init:
        return "sincos" if "--pos-init sincos" in record["command"] else "scratch"
    training = init.get("training") or {}
    command = str(training.get("command", ""))
    if command.startswith(ORIENTATION_COMMANDS):
        return "orientation backbone"
    return _output(command) if command.startswith("vidrec train") else Path(init["path"]).stem


def _readout(record: dict[str, Any], bundle_options: dict[str, Any] | None) -> str:
    """What the head read: the record's options, else the bundle's own (for the bundle's own
    record). Records from before ``vidrec train`` kept the options have neither; every family
    read the CLS token then."""
    options = record.get("options") or bundle_options or {}
    return str(options.get("readout", "cls"))


def stage_row(
    record: dict[str, Any], bundle_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The facts of one ``vidrec train`` record that a comparison of runs needs;
    ``bundle_options`` are the family options of the bundle that holds it as its own."""
    config = record["config"]
    heldout = record.get("heldout") or {}
    swaps = dict(heldout.get("pair_swap_rate") or {})
    swaps.pop("/".join(ROTATION), None)
    per_class = heldout.get("per_class") or {}
    codec = config.get("codec")
    return {
        "run": _output(record["command"]),
        "model": record["model"].split("_vit_")[0],
        "start": _start(record),
        "readout": _readout(record, bundle_options),
        "steps": record["steps"],
        "batch": config["batch_size"],
        "lr": config["lr"],
        "codec": None if codec is None else codec["probability"],
        "turn_loss": config.get("turn_loss", 0.0),
        "device": record.get("device"),
        "train_seconds": record.get("train_seconds"),
        "heldout_clips": heldout.get("clips"),
        "top1": heldout.get("top1"),
        # the share of the rotation clips labelled with their own turn (the classes are balanced)
        "rotation_right": (
            sum(per_class[c] for c in ROTATION) / 2
            if all(c in per_class for c in ROTATION)
            else None
        ),
        # NaN (no clip of the pair labelled within it) is left out: JSON has no NaN
        "worst_other_swap": max((v for v in swaps.values() if v == v), default=None),
    }


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """The stages of every bundle's chain, first stage first, each once."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in paths:
        chain = training_chain(read_training_record(path))
        for index, record in enumerate(chain):
            if not record["command"].startswith("vidrec train") or record["command"] in seen:
                continue
            seen.add(record["command"])
            own = index == len(chain) - 1  # the bundle's own run, whose config the file holds
            rows.append(stage_row(record, _bundle_options(path) if own else None))
    return rows


def _bundle_options(path: Path) -> dict[str, Any] | None:
    """A bundle's family options as its config stores them (``None`` for plain weights)."""
    try:
        config, _ = read_bundle_config(path)
    except CheckpointError:
        return None
    return dict(config.options)


def _cell(value: Any, form: str = "{}") -> str:
    return "" if value is None else form.format(value)


def render(rows: list[dict[str, Any]]) -> str:
    header = (
        "run | model | start | readout | steps | batch | lr | codec | turn | top-1 "
        "| rotations right"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['run']} | {r['model']} | {r['start']} | {r['readout']} | {r['steps']} | "
            f"{r['batch']} | "
            f"{r['lr']:g} | {_cell(r['codec'])} | {r['turn_loss']:g} | "
            f"{_cell(r['top1'], '{:.1%}')} | {_cell(r['rotation_right'], '{:.0%}')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument(
        "--family", action="append", default=None, help="only this family's stages (repeatable)"
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.bundles if read_training_record(p) is None]
    if missing:
        parser.error(f"no training record in {', '.join(missing)}")
    rows = collect(args.bundles)
    if args.family:
        rows = [r for r in rows if r["model"] in args.family]
    print(render(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
