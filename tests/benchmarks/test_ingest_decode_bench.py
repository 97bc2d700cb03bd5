"""``vidrec bench ingest_decode`` loads: the script imports the service package, which no file
in benchmarks/ may shadow (``python benchmarks/ingest_decode.py`` puts benchmarks/ first on the
import path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VIDREC = Path(sys.executable).parent / "vidrec"


def test_the_ingest_benchmark_runs_through_vidrec_bench() -> None:
    result = subprocess.run(
        [str(VIDREC), "bench", "ingest_decode", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--repeats" in result.stdout and "ingest path" in result.stdout
