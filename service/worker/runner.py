"""The tensors of a worker's live sessions: its live runners (one per model and stride, each with
its preallocated pool of session slots, ``model_core.eventful.pool``) and the step that runs a
plan of due frames through them.

A session holds a slot from its first frame here until it closes. The runner at the deployment's
stride exists from start-up; one for another stride (a session may ask for its own) is made when
a session needs it and dropped with its last session. A step's per-session costs are what the
engine counted for each frame (``LiveRunner.run``), not differences of running totals.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_core.eventful import SessionCost
from service.inference import LiveEvent, LiveRunner, ModelCatalog
from service.ingest import FrameLimits, decode_ws_frame
from service.worker.scheduler import Frame

RunnerKey = tuple[str, int]
"""(model, stride) of a live runner."""


@dataclass(frozen=True)
class StepResult:
    """One runner's batched step.

    Attributes:
        key: The runner's (model, stride).
        events: Per session of the step, its labels event when one was due.
        costs: Per session of the step, what its frame cost.
        seconds: Wall time of the step.
    """

    key: RunnerKey
    events: dict[str, LiveEvent | None]
    costs: dict[str, SessionCost]
    seconds: float


@dataclass(frozen=True)
class StepFailure:
    """One runner's step that raised: its sessions were reset to a full first frame.

    Attributes:
        key: The runner's (model, stride).
        session_ids: The sessions of the step.
        error: What was raised.
    """

    key: RunnerKey
    session_ids: list[str]
    error: Exception


class Runner:
    """The live runners of one worker and the slots its sessions hold.

    Args:
        catalog: The loaded models.
        capacity: Session slots per runner.
        stride: The deployment's stride (its runners exist from the start).
        frame_limits: Bounds on a live frame, checked again as it is decoded.
    """

    def __init__(
        self, catalog: ModelCatalog, capacity: int, stride: int, frame_limits: FrameLimits
    ) -> None:
        self.catalog = catalog
        self.capacity = capacity
        self.stride = stride
        self.frame_limits = frame_limits
        self.runners: dict[RunnerKey, LiveRunner] = {
            (name, stride): LiveRunner(catalog.get(name), capacity, stride)
            for name in catalog.live_names
        }
        self.held: dict[str, RunnerKey] = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self.held

    def open(
        self,
        session_id: str,
        model: str,
        stride: int,
        budget: Mapping[str, Any],
        first_index: int,
    ) -> None:
        """Gives a session a slot of the runner of its model and stride.

        Raises:
            CapacityError: The runner's slots are all in use.
            ValueError: A bad budget, or the session holds a slot already.
        """
        key = (model, stride)
        runner = self.runners.get(key)
        if runner is None:
            runner = LiveRunner(self.catalog.get(model), self.capacity, stride)
            self.runners[key] = runner
        try:
            runner.open(session_id, budget, first_index=first_index)
        except Exception:
            self._drop_if_unused(key)
            raise
        self.held[session_id] = key

    def close(self, session_id: str) -> None:
        """Frees the session's slot, if it holds one."""
        key = self.held.pop(session_id, None)
        if key is not None:
            self.runners[key].close(session_id)
            self._drop_if_unused(key)

    def _drop_if_unused(self, key: RunnerKey) -> None:
        if key[1] != self.stride and not len(self.runners[key]):
            del self.runners[key]

    def set_budget(self, session_id: str, budget: Mapping[str, Any]) -> None:
        """Changes the budget of a session that holds a slot (from its next frame)."""
        key = self.held.get(session_id)
        if key is not None:
            self.runners[key].set_budget(session_id, budget)

    def image(self, frame: Frame, short_side: int | None = None) -> np.ndarray:
        """The frame as an ``(H, W, 3)`` uint8 image; a large JPEG decoded only down to
        ``short_side`` (the model's resize size), as its preprocessing shrinks it anyway.

        Raises:
            IngestError: The frame does not decode, or breaks the frame limits.
        """
        if frame.image is not None:
            return frame.image
        assert frame.data is not None
        image = decode_ws_frame(frame.data, self.frame_limits, short_side).image
        # Pillow's arrays are read-only; torch warns about (and never needs) that.
        return image if image.flags.writeable else image.copy()

    def step(self, images: Mapping[str, np.ndarray]) -> list[StepResult | StepFailure]:
        """One batched step per runner over the sessions named (each must hold a slot)."""
        batches: dict[RunnerKey, dict[str, np.ndarray]] = {}
        for session_id, image in images.items():
            batches.setdefault(self.held[session_id], {})[session_id] = image
        results: list[StepResult | StepFailure] = []
        for key, batch in batches.items():
            runner = self.runners[key]
            started = time.perf_counter()
            try:
                step = runner.run(batch)
            except Exception as exc:
                for session_id in batch:
                    # Its caches may be half written: it starts again with a full frame.
                    with contextlib.suppress(Exception):
                        runner.reset(session_id)
                results.append(StepFailure(key, list(batch), exc))
                continue
            seconds = time.perf_counter() - started
            results.append(StepResult(key, step.events, step.costs, seconds))
        return results
