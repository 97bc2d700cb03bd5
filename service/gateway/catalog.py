"""The models the live workers serve, read from their heartbeat hashes.

The gateway loads no model, so what a client may ask for is whatever the live workers advertise:
each heartbeat hash carries ``models`` (clip models, JSON list), ``live_models`` (models it runs
live sessions with, JSON list) and ``catalog`` (the JSON list ``ModelCatalog.describe()`` returns:
labels, frames, image size, GMACs, ``default_for``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from service.gateway.errors import ApiError
from service.queue import WorkerInfo

Role = Literal["clip", "live"]

CATALOG_FIELD = "catalog"
"""Heartbeat-hash field holding the worker's ``ModelCatalog.describe()`` JSON."""


def _rows(worker: WorkerInfo) -> list[dict[str, Any]]:
    raw = worker.extra.get(CATALOG_FIELD)
    if not raw:
        return []
    try:
        rows = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("name"), str)]


@dataclass
class LiveCatalog:
    """The union of what the live workers serve.

    Attributes:
        workers: The live workers, sorted by id.
        rows: Each model's ``describe()`` row (from the first worker that described it), by name.
        clip: Clip model name -> ids of the workers serving it.
        live: Live model name -> ids of the workers running it live.
    """

    workers: list[WorkerInfo]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    clip: dict[str, list[str]] = field(default_factory=dict)
    live: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, workers: list[WorkerInfo]) -> LiveCatalog:
        """Merges the workers' advertisements."""
        cat = cls(workers=sorted(workers, key=lambda w: w.worker_id))
        for w in cat.workers:
            for row in _rows(w):
                cat.rows.setdefault(row["name"], row)
            for name in w.models:
                cat.clip.setdefault(str(name), []).append(w.worker_id)
            for name in w.live_models:
                cat.live.setdefault(str(name), []).append(w.worker_id)
        return cat

    def names(self, role: Role) -> list[str]:
        """Models served for the role, sorted."""
        return sorted(self.clip if role == "clip" else self.live)

    def describe(self) -> list[dict[str, Any]]:
        """Rows for ``GET /v1/models``: each model's description, who serves it and for what."""
        out = []
        for name in sorted(set(self.rows) | set(self.clip) | set(self.live)):
            row = dict(self.rows.get(name, {"name": name}))
            row["serving"] = {
                "clip": self.clip.get(name, []),
                "live": self.live.get(name, []),
            }
            out.append(row)
        return out

    def resolve(self, requested: str | None, role: Role, configured: str | None) -> str:
        """The model to use for a request.

        Args:
            requested: What the client asked for, or ``None``.
            role: ``clip`` or ``live``.
            configured: The deployment's default for the role (``Settings.clip_model``...).

        Raises:
            ApiError: 503 ``no_worker`` while no live worker serves the role; 404
                ``unknown_model`` (with the known ones) for a model nobody serves.
        """
        names = self.names(role)
        if not names:
            what = "clips" if role == "clip" else "live sessions"
            raise ApiError(
                503,
                "no_worker",
                f"no live worker serves models for {what}; try again when one has started",
                headers={"Retry-After": "1"},
            )
        if requested:
            if requested in names:
                return requested
            raise ApiError(
                404,
                "unknown_model",
                f"unknown model {requested!r} for {role}; known models: {', '.join(names)}",
                models=names,
            )
        if configured and configured in names:
            return configured
        defaults = [n for n in names if role in (self.rows.get(n, {}).get("default_for") or ())]
        return defaults[0] if defaults else names[0]

    def default(self, role: Role, configured: str | None) -> str | None:
        """The model a request without ``model`` gets for the role; ``None`` when none is served."""
        return self.resolve(None, role, configured) if self.names(role) else None

    def row(self, name: str) -> dict[str, Any]:
        """The description of one model (``{"name": name}`` when no worker described it)."""
        return self.rows.get(name, {"name": name})
