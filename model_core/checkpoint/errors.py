"""The one error type of checkpoint loading, and how its messages list keys."""

from __future__ import annotations

from collections.abc import Sequence

# Long lists bury the point of the message; the LoadResult of a strict=False load has them all.
MAX_LISTED_KEYS = 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is of no known layout, or does not fit the model."""


def list_keys(keys: Sequence[str], limit: int = MAX_LISTED_KEYS, indent: str = "    ") -> str:
    """One key per line, the first ``limit`` of them, then how many were left out."""
    lines = [f"{indent}{key}" for key in keys[:limit]]
    if len(keys) > limit:
        lines.append(f"{indent}... and {len(keys) - limit} more")
    return "\n".join(lines)
