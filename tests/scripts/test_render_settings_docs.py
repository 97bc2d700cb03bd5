"""docs/OPERATIONS.md's settings table is the one scripts/render_settings_docs.py makes today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "render_settings_docs.py"


def test_settings_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_every_setting_is_in_the_table() -> None:
    from service.settings import Settings

    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for name in Settings.model_fields:
        assert f"| `VIDREC_{name.upper()}` |" in text
