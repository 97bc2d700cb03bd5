"""research/training_records.py: every stage of a set of bundles' chains, once, as recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model_core import create_model
from model_core.checkpoint import read_training_record, save_weights
from service.cli import main as vidrec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "research"))
from training_records import main, stage_row  # noqa: E402

TINY = (
    "tokshift_vit_tiny_patch16_224", "--img-size", "32", "--frames", "4", "--depth", "2",
    "--clips", "16", "--batch-size", "8", "--eval-clips", "22", "--device", "cpu",
    "--threads", "1", "--quiet",
)  # fmt: skip


def test_stages_shared_by_two_chains_are_listed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = create_model("tokshift_vit_tiny_patch16_224", img_size=32, depth=2).state_dict()
    start = save_weights(weights, tmp_path / "start.safetensors", {"command": "python x.py"})
    first, second, third = (tmp_path / f"{n}.safetensors" for n in ("first", "second", "third"))
    assert vidrec(["train", *TINY, "--output", str(first), "--init", str(start)]) == 0
    assert vidrec(["train", *TINY, "--output", str(second), "--init", str(first)]) == 0
    assert (
        vidrec(["train", *TINY, "--output", str(third), "--init", str(first), "--lr", "1e-4"]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "rows.json"
    assert main([str(second), str(third), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["run"], r["start"]) for r in rows] == [
        ("first", "start"),
        ("second", "first"),
        ("third", "first"),
    ]
    record = read_training_record(third)
    assert record is not None
    heldout = record["heldout"]
    assert rows[2]["lr"] == 1e-4 and rows[2]["steps"] == 2 and rows[2]["batch"] == 8
    assert rows[2]["top1"] == heldout["top1"] and rows[2]["heldout_clips"] == 22
    rotation = [heldout["per_class"][c] for c in ("rotate_clockwise", "rotate_anticlockwise")]
    assert rows[2]["rotation_right"] == sum(rotation) / 2
    assert {r["readout"] for r in rows} == {"cls"}
    assert main([str(second), "--family", "vast", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["rows"] == []  # every stage here is tokshift's
    assert "third | tokshift | first | cls | 2 | 8 |" in capsys.readouterr().out


def test_the_readout_comes_from_the_record_or_else_the_bundle(tmp_path: Path) -> None:
    vast = tmp_path / "vast.safetensors"
    tiny_vast = ("vast_vit_tiny_patch16_224", *TINY[1:])
    assert vidrec(["train", *tiny_vast, "--output", str(vast)]) == 0
    record = read_training_record(vast)
    assert record is not None and record["options"] == {"readout": "patch_max"}
    assert stage_row(record)["readout"] == "patch_max"
    # A record from before the options were kept: the bundle's config says, else the CLS token.
    del record["options"]
    assert stage_row(record, {"readout": "patch_max"})["readout"] == "patch_max"
    assert stage_row(record)["readout"] == "cls"


def test_a_file_without_a_record_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_text("junk")
    for path in (plain, junk):
        with pytest.raises(SystemExit):
            main([str(path)])
