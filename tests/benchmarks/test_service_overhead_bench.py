"""``vidrec bench service_overhead`` on a tiny configuration writes a complete JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_INFERENCE = Path(__file__).resolve().parents[1] / "service" / "inference"
if str(_INFERENCE) not in sys.path:
    sys.path.insert(0, str(_INFERENCE))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402

VIDREC = Path(sys.executable).parent / "vidrec"


@pytest.mark.integration
def test_tiny_service_benchmark_writes_json(tmp_path: Path) -> None:
    models = write_bundles(tmp_path / "models", (CLIP_MODEL, LIVE_MODEL))
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        str(VIDREC), "bench", "service_overhead", "--models-dir", str(models), "--out", str(out),
        "--clips", "2", "--concurrent-clips", "2", "--clip-concurrency", "2",
        "--clip-frames", "8", "--size", "64", "--sessions", "1", "2",
        "--stream-frames", "4", "--warmup", "1",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {out}" in result.stdout
    report = json.loads(out.read_text(), parse_constant=pytest.fail)  # strict: no NaN
    assert report["config"]["clip_model"] == CLIP_MODEL
    assert report["config"]["live_model"] == LIVE_MODEL
    assert report["machine"]["cores"] >= 1
    assert [row["case"] for row in report["rows"]] == [
        "clips sequential",
        "clips x2 concurrent",
        "streams x1",
        "streams x2",
    ]
    for row in report["rows"]:
        assert row["service /s"] > 0 and row["in-proc /s"] > 0
        assert row["throughput ratio"] == pytest.approx(row["service /s"] / row["in-proc /s"])
        assert row["p50 ratio"] > 0 and row["service p95 ms"] >= row["service p50 ms"]
    service = report["service"]
    assert service["clips"]["sequential"]["items"] == 2
    assert set(service["clips"]["sequential"]["server_timing_p50_ms"]) >= {"decode", "inference"}
    assert service["streams"]["2"]["items"] == 2 * 4 and service["streams"]["2"]["errors"] == 0
    assert service["streams"]["1"]["gmacs_per_frame"] > 0
    assert report["serve_exit_status"] == 0
