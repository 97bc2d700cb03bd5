"""``vidrec bench clip_lengths`` on tiny bundles: every bundle scored at every clip shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_INFERENCE = Path(__file__).resolve().parents[1] / "service" / "inference"
if str(_INFERENCE) not in sys.path:
    sys.path.insert(0, str(_INFERENCE))

from inference_bundles import AVG_MODEL, CLIP_MODEL, write_bundles  # noqa: E402

VIDREC = Path(sys.executable).parent / "vidrec"
SHAPES = 6  # (frames, fps) kinds the benchmark measures


def test_every_bundle_is_scored_at_every_clip_shape(tmp_path: Path) -> None:
    models = write_bundles(tmp_path / "models", (CLIP_MODEL, AVG_MODEL))
    out = tmp_path / "lengths.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        str(VIDREC), "bench", "clip_lengths", str(out), "--models-dir", str(models),
        "--clips-per-class", "1", "--threads", "1",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert len(rows) == 2 * SHAPES
    assert {r["model"] for r in rows} == {CLIP_MODEL, AVG_MODEL}
    assert {(r["frames"], r["fps"]) for r in rows} >= {(8, 10.0), (16, 10.0), (24, 30.0)}
    assert all(r["clips"] == 11 and 0.0 <= r["top1"] <= 1.0 for r in rows)
    assert report["command"].startswith("vidrec bench clip_lengths")
    assert CLIP_MODEL in result.stdout and "16 @ 10" in result.stdout
