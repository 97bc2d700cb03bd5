"""The figures and tables in the docs are the ones the scripts produce today: every renderer
of a generated section runs with ``--check``, which exits 1 when the doc is stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RENDERERS = [
    "scripts/render_model_docs.py",  # docs/MODELS.md: the model and demo-bundle tables
    "scripts/render_settings_docs.py",  # docs/OPERATIONS.md: the settings table
    "scripts/render_bench_docs.py",  # docs/BENCHMARKS.md: the benchmark tables, from JSON
    "research/render_notes.py",  # research/NOTES.md: the lab notes' tables, from research/data
]


@pytest.mark.parametrize("script", RENDERERS)
def test_generated_doc_sections_are_current(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / script), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
