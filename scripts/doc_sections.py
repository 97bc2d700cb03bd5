"""Generated sections of the docs: the text between a start and an end marker is rewritten by a
script, and ``--check`` (run by the tests) fails when the doc is stale."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# start marker, end marker, and a renderer whose text includes both markers
Section = tuple[str, str, Callable[[], str]]


def update_doc(doc: Path, sections: Sequence[Section], *, check: bool, script: str) -> int:
    """Rewrites every section of ``doc`` (with ``check``, only compares); returns an exit status."""
    text = doc.read_text()
    updated = text
    for start, end, render in sections:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
        found = pattern.search(updated)
        if found is None:
            print(f"{doc}: markers {start} ... {end} not found", file=sys.stderr)
            return 1
        updated = updated[: found.start()] + render() + updated[found.end() :]
    if check:
        if updated != text:
            print(f"{doc} is stale: run python {script}", file=sys.stderr)
            return 1
        return 0
    doc.write_text(updated)
    return 0
