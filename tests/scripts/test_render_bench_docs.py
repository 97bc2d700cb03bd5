"""docs/BENCHMARKS.md's eventful tables are the ones scripts/render_bench_docs.py renders from the
benchmark's JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "render_bench_docs.py"


def test_eventful_tables_match_the_recorded_json() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
