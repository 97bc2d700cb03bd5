"""``vidrec models``, run as a user runs it: the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from model_core import list_models

VIDREC = shutil.which("vidrec") or str(Path(sys.executable).parent / "vidrec")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIDREC, *args], capture_output=True, text=True, timeout=120)


def test_table_lists_every_registered_model() -> None:
    result = run("models")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "family"]
    assert {line.split()[0] for line in lines[2:]} == set(list_models())


def test_json_reports_params_and_gmacs() -> None:
    result = run("models", "*_base_*", "--json", "--num-classes", "1000")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    vit = rows["vit_avg_vit_base_patch16_224"]
    assert vit["gmacs_per_frame"] == 17.564
    assert vit["params_m"] == 86.568  # timm's vit_base_patch16_224
    assert rows["tokshift_vit_base_patch16_224"]["gmacs_per_clip"] == vit["gmacs_per_clip"]
    assert rows["laps_vit_base_patch16_224"]["gmacs_per_clip"] > vit["gmacs_per_clip"]


def test_no_match_is_an_error() -> None:
    result = run("models", "no_such_model*")
    assert result.returncode == 2
    assert "no registered model matches" in result.stderr
