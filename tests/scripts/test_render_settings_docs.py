"""docs/OPERATIONS.md's settings table names every setting (tests/test_docs.py checks it is the one
scripts/render_settings_docs.py makes today)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_table() -> None:
    from service.settings import Settings

    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for name in Settings.model_fields:
        assert f"| `VIDREC_{name.upper()}` |" in text
