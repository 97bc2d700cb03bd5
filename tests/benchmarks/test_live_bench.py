"""``vidrec bench live`` on a tiny sweep against a service it starts: the JSON's structure, frames
sent and labels back, the plot, and the docs renderer's table from that JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
_INFERENCE = ROOT / "tests" / "service" / "inference"
if str(_INFERENCE) not in sys.path:
    sys.path.insert(0, str(_INFERENCE))

from inference_bundles import CLIP_MODEL, LIVE_MODEL, write_bundles  # noqa: E402

VIDREC = Path(sys.executable).parent / "vidrec"


def _renderer() -> ModuleType:
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)  # it imports doc_sections from its own folder
    spec = importlib.util.spec_from_file_location(
        "render_bench_docs", ROOT / "scripts" / "render_bench_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_tiny_live_sweep_writes_json_plot_and_table(tmp_path: Path) -> None:
    models = write_bundles(tmp_path / "models", (LIVE_MODEL,))
    out = tmp_path / "live.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    command = [
        str(VIDREC), "bench", "live", "--models-dir", str(models), "--out", str(out),
        "--streams", "1", "2", "--workers", "1", "2", "--sizes", "112", "80x60",
        "--fps", "10", "--duration", "2", "--warmup", "0.5", "--tail", "3", "--sources", "1",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {out}" in result.stdout
    report = json.loads(out.read_text(), parse_constant=pytest.fail)  # strict: no NaN
    assert report["benchmark"] == "live"
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["config"]["own_service"] is True and report["config"]["server_env"] == {}
    assert [s["exit_status"] for s in report["services"]] == [0, 0]

    points = report["points"]
    assert [(p["workers"], p["size"], p["streams"]) for p in points] == [
        (w, size, n) for w in (1, 2) for size in ("112x112", "80x60") for n in (1, 2)
    ]
    for p in points:
        where = f"{p['workers']} worker(s), {p['size']}, {p['streams']} stream(s)"
        assert p["opened"] == p["streams"] and p["refused"] == {}, where
        assert p["ended_early"] == {}, where
        assert p["models"] == [LIVE_MODEL], where
        assert p["frames_sent"] >= p["streams"] * 10, where  # 20 due per stream; a slow client
        assert p["events"].get("labels", 0) >= p["streams"], where  # labels came back
        assert 0 < p["frames_processed"] <= p["frames_sent"], where
        assert p["frames_processed"] + p["frames_dropped"] <= p["frames_sent"], where
        # the gateway numbered every frame the client sent
        assert p["server_counters"]["frames_received"] == p["frames_sent"], where
        latency = p["latency_ms"]
        assert latency["count"] > 0, where
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], where
        assert p["server_latency_ms"]["count"] == latency["count"], where
        workers = sorted(k for k in p["cpu_percent"] if k.startswith("worker"))
        assert workers == [f"worker{i}" for i in range(1, p["workers"] + 1)], where
        assert all(p["cpu_percent"][k] is not None for k in (*workers, "gateway", "redis"))
        assert p["redis_memory"]["used_max_bytes"] > 0, where
        assert p["client"]["lag_ms"]["count"] == p["frames_sent"], where
        breakdown = p["breakdown_ms"]
        assert breakdown["round_trip"] == pytest.approx(latency["mean"]), where
        assert breakdown["model_step"] > 0 and breakdown["decode_per_frame"] > 0, where
        assert breakdown["frames_per_step"] >= 1, where
    assert len(report["rows"]) == len(points) == len(report["breakdown_rows"])
    assert report["breakdown_missing"]

    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    lines = _renderer().live_section(report)
    rows = [line for line in lines if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 2 * len(points)  # the figures table and the breakdown table
    assert report["machine"]["cpu"] in lines[0]
    assert not any("clips/s" in line for line in lines)  # no clip load, no column


@pytest.mark.integration
def test_live_sweep_with_clip_uploads_beside(tmp_path: Path) -> None:
    models = write_bundles(tmp_path / "models", (CLIP_MODEL, LIVE_MODEL))
    out = tmp_path / "live.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    command = [
        str(VIDREC), "bench", "live", "--models-dir", str(models), "--out", str(out),
        "--streams", "2", "--workers", "1", "--sizes", "112", "--fps", "10", "--duration", "3",
        "--warmup", "0.5", "--sources", "1", "--clip-load", "2", "--clip-form", "crops=3",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text(), parse_constant=pytest.fail)
    (point,) = report["points"]
    clips = point["clip_load"]
    assert clips["uploaders"] == 2 and clips["failed"] == {}
    assert clips["done"] >= 1 and clips["latency_ms"]["count"] == clips["done"]
    assert report["rows"][0]["clips/s"] == pytest.approx(clips["per_s"])
    assert point["events"].get("labels", 0) >= 2 and point["frames_processed"] > 0
    # clip decodes share the worker's decode histogram: no live decode figure then
    assert point["breakdown_ms"]["decode_per_frame"] is None
    assert point["breakdown_ms"]["model_step"] > 0  # the live model's steps only
    lines = _renderer().live_section(report)
    assert "2 clip uploads in flight (`crops=3`)" in lines[0]
    assert any(line.endswith(f" {clips['per_s']:.1f} |") for line in lines)
