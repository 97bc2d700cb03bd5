"""Live sessions of one model on the Eventful engine: session ids to slots, one batched step.

A worker keeps one ``LiveRunner`` per live model. Sessions are named by the service's string
ids; each holds a slot of the engine's preallocated pool. ``step`` takes the newest uint8 frame
of any number of sessions, preprocesses each with the model's own preprocessing, runs them in
one batched engine step and answers, per session, a labels event every ``stride`` frames (or
None), with the compute spent since the session's previous event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model_core.config import Preprocessing
from model_core.eventful import (
    KEEP_ALL,
    Budget,
    EventfulEngine,
    SessionCost,
    Threshold,
    TopFraction,
    TopR,
)
from model_core.preprocess import preprocess_frames
from service.budget import check_budget

from .catalog import LIVE_RULE, ModelEntry


class CapacityError(RuntimeError):
    """Every session slot of a runner is in use."""


class UnknownSessionError(KeyError):
    """A session id that the runner does not hold."""

    def __str__(self) -> str:  # KeyError's own str() quotes the whole message
        return str(self.args[0]) if self.args else ""


def parse_budget(spec: Any) -> Budget:
    """A compute budget from its JSON form, checked by ``service.budget.check_budget`` (the
    service's one budget grammar: the gateway, the settings, the CLI and the SDK check with it).

    ``{"fraction": 0.25}`` (or a bare ``0.25``) recomputes the quarter of each frame's tokens that
    changed most, ``{"tokens": 20}`` the 20 that changed most, ``{"threshold": 0.1}`` every token
    whose accumulated change exceeds 0.1 (``{"threshold": [0.8, 2.2, 1.6]}``: one threshold for
    each gate, qkv, projection and MLP; ``"input": 3`` beside either re-embeds only the patches
    whose pixels moved more than 3), ``{"keep_all": true}`` (or ``"all"``) every token (the
    dense model).

    Raises:
        ValueError: anything else, with a message that lists the accepted forms.
    """
    checked = check_budget(spec)
    input_gate = checked.pop("input", None)
    ((kind, value),) = checked.items()
    if kind == "fraction":
        return TopFraction(float(value))
    if kind == "tokens":
        return TopR(int(value))
    if kind == "threshold":
        input_threshold = None if input_gate is None else float(input_gate)
        if isinstance(value, list):
            per_gate = (float(value[0]), float(value[1]), float(value[2]))
            return Threshold(per_gate, input=input_threshold)
        return Threshold(float(value), input=input_threshold)
    return KEEP_ALL


def budget_to_dict(budget: Budget) -> dict[str, Any]:
    """The JSON form of ``budget`` (the inverse of :func:`parse_budget`)."""
    if budget == KEEP_ALL:
        return {"keep_all": True}
    if isinstance(budget, TopFraction):
        return {"fraction": budget.fraction}
    if isinstance(budget, TopR):
        return {"tokens": budget.r}
    threshold = list(budget.threshold) if isinstance(budget.threshold, tuple) else budget.threshold
    if budget.input is None:
        return {"threshold": threshold}
    return {"threshold": threshold, "input": budget.input}


def _as_budget(budget: Budget | Mapping[str, Any] | None) -> Budget:
    if budget is None:
        return KEEP_ALL
    if isinstance(budget, TopR | TopFraction | Threshold):
        return budget
    return parse_budget(budget)


@dataclass
class Compute:
    """What some frames of a session cost.

    Attributes:
        gmacs: GMACs spent.
        dense_gmacs: GMACs the dense model would have spent on the same frames.
        recompute_fraction: share of token rows recomputed, averaged over the frames.
        frames: frames counted.
    """

    gmacs: float = 0.0
    dense_gmacs: float = 0.0
    recompute_fraction: float = 0.0
    frames: int = 0

    def add(self, cost: SessionCost) -> None:
        self.recompute_fraction = (
            self.recompute_fraction * self.frames + cost.recompute_fraction
        ) / (self.frames + 1)
        self.frames += 1
        self.gmacs += cost.gmacs
        self.dense_gmacs += cost.dense_gmacs

    def to_dict(self) -> dict[str, Any]:
        return {
            "gmacs": self.gmacs,
            "dense_gmacs": self.dense_gmacs,
            "recompute_fraction": self.recompute_fraction,
            "frames": self.frames,
        }


@dataclass(frozen=True)
class LiveEvent:
    """Labels of one session after a step.

    Attributes:
        session_id: the session.
        model: the model's name.
        frame_index: frames of the session processed so far (the labels cover frames up to
            ``frame_index - 1``, counting from 0).
        labels: the top labels over the session's window with their softmax scores.
        window: frames the temporal head saw (the model's frames once warmed up).
        compute: spent since the session's previous event (or its start).
        totals: spent since the session was opened.
    """

    session_id: str
    model: str
    frame_index: int
    labels: list[tuple[str, float]]
    window: int
    compute: Compute
    totals: Compute

    def to_dict(self) -> dict[str, Any]:
        """The fields of the service's labels event that the runner knows."""
        return {
            "type": "labels",
            "session_id": self.session_id,
            "frame_index": self.frame_index,
            "labels": [{"label": label, "score": score} for label, score in self.labels],
            "window": self.window,
            "compute": self.compute.to_dict(),
            "totals": self.totals.to_dict(),
        }


@dataclass(frozen=True)
class LiveStep:
    """What one batched step did.

    Attributes:
        events: Per session, its labels event when one was due, else None.
        costs: Per session, what its frame cost in this step, as the engine counted it.
    """

    events: dict[str, LiveEvent | None]
    costs: dict[str, SessionCost]


@dataclass
class _Session:
    slot: int
    frame_index: int
    since_event: Compute = field(default_factory=Compute)
    totals: Compute = field(default_factory=Compute)


class LiveRunner:
    """The live sessions of one model.

    Args:
        entry: a live model of the catalog (``entry.live``).
        capacity: session slots to preallocate.
        stride: a session emits labels every ``stride`` of its frames.
        device: where the state lives (the model's device by default).
        top_k: labels per event.

    Raises:
        ValueError: a model that cannot stream, or a bad capacity, stride or ``top_k``.
    """

    def __init__(
        self,
        entry: ModelEntry,
        capacity: int,
        stride: int,
        device: torch.device | str | None = None,
        top_k: int = 5,
    ) -> None:
        if not entry.live:
            raise ValueError(
                f"model {entry.name!r} ({'causal ' if entry.config.causal else ''}"
                f"{entry.family}) cannot serve live streams: {LIVE_RULE}"
            )
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.entry = entry
        self.engine = EventfulEngine(entry.model, capacity, stride=stride, device=device)
        self.top_k = min(top_k, entry.config.num_classes)
        self._sessions: dict[str, _Session] = {}

    @property
    def capacity(self) -> int:
        return self.engine.pool.capacity

    @property
    def stride(self) -> int:
        return self.engine.stride

    @property
    def window(self) -> int:
        return self.engine.encoder.spec.window

    @property
    def bytes_per_slot(self) -> int:
        return self.engine.bytes_per_slot

    @property
    def sessions(self) -> list[str]:
        return list(self._sessions)

    @property
    def free(self) -> int:
        return self.capacity - len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def open(
        self,
        session_id: str,
        budget: Budget | Mapping[str, Any] | None = None,
        first_index: int = 0,
    ) -> None:
        """Starts a session; its first frame recomputes every token.

        Args:
            session_id: the service's id; must not be open here already.
            budget: a ``Budget`` or its JSON form; None keeps every token.
            first_index: frames the session processed elsewhere before (a session that moved
                from a dead worker keeps counting its frames).

        Raises:
            CapacityError: every slot is in use.
            ValueError: the id is open already, or a bad budget.
        """
        if session_id in self._sessions:
            raise ValueError(f"session {session_id!r} is open already")
        parsed = _as_budget(budget)
        if not self.free:
            raise CapacityError(
                f"all {self.capacity} live session slots of model {self.entry.name!r} are in use"
            )
        self._sessions[session_id] = _Session(self.engine.open(parsed), first_index)

    def close(self, session_id: str) -> bool:
        """Ends a session and frees its slot; False when it was not open (closing twice is fine)."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self.engine.close(session.slot)
        return True

    def reset(self, session_id: str) -> None:
        """Restarts a session's caches and window: its next frame is a full first frame.

        The frame count and totals go on; the compute since the last event starts again.
        """
        session = self._get(session_id)
        self.engine.reset(session.slot)
        session.since_event = Compute()

    def set_budget(self, session_id: str, budget: Budget | Mapping[str, Any]) -> None:
        """Changes a session's budget from its next frame on."""
        self.engine.set_budget(self._get(session_id).slot, _as_budget(budget))

    def budget(self, session_id: str) -> Budget:
        return self.engine.pool.budget(self._get(session_id).slot)

    def totals(self, session_id: str) -> Compute:
        """What the session spent since it was opened."""
        return self._get(session_id).totals

    def step(self, frames: Mapping[str, np.ndarray]) -> dict[str, LiveEvent | None]:
        """One frame for each session named, in one batched engine step.

        Args:
            frames: session id to its newest ``(H, W, 3)`` uint8 RGB frame (any size: each is
                resized and cropped by the model's preprocessing).

        Returns:
            Per session, its labels event when one was due, else None.

        Raises:
            UnknownSessionError: a session that is not open (nothing is computed).
            ValueError: a frame of the wrong shape or type (nothing is computed).
        """
        return self.run(frames).events

    def run(self, frames: Mapping[str, np.ndarray]) -> LiveStep:
        """:meth:`step`, with what each session's frame cost in it (for a caller that accounts
        per session, as the worker's metrics do).

        Raises:
            UnknownSessionError: a session that is not open (nothing is computed).
            ValueError: a frame of the wrong shape or type (nothing is computed).
        """
        if not frames:
            return LiveStep({}, {})
        # In slot order: sessions in consecutive slots step on a view of the pool's state,
        # not on a copy gathered and written back.
        ids = sorted(frames, key=lambda s: self._get(s).slot)
        sessions = [self._sessions[s] for s in ids]
        batch = _preprocess_all([frames[s] for s in ids], ids, self.entry.config.preprocessing)
        output = self.engine.step(batch, [s.slot for s in sessions])
        events: dict[str, LiveEvent | None] = {}
        costs: dict[str, SessionCost] = {}
        due = [(i, logits) for i, logits in enumerate(output.logits) if logits is not None]
        probs = torch.stack([lg for _, lg in due]).float().softmax(-1).cpu() if due else None
        for i, (session_id, session) in enumerate(zip(ids, sessions, strict=True)):
            cost = output.costs[i]
            session.frame_index += 1
            session.since_event.add(cost)
            session.totals.add(cost)
            events[session_id] = None
            costs[session_id] = cost
        for row, (i, _) in enumerate(due):
            assert probs is not None
            session_id, session = ids[i], sessions[i]
            scores, index = probs[row].topk(self.top_k)
            events[session_id] = LiveEvent(
                session_id=session_id,
                model=self.entry.name,
                frame_index=session.frame_index,
                labels=[
                    (self.entry.labels[c], float(p))
                    for c, p in zip(index.tolist(), scores.tolist(), strict=True)
                ],
                window=min(self.engine.totals(session.slot).frames, self.window),
                compute=session.since_event,
                totals=Compute(**session.totals.to_dict()),
            )
            session.since_event = Compute()
        return LiveStep(events, costs)

    def _get(self, session_id: str) -> _Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownSessionError(
                f"session {session_id!r} is not open on model {self.entry.name!r}"
            ) from None


def _preprocess_all(
    frames: list[np.ndarray], session_ids: list[str], spec: Preprocessing
) -> torch.Tensor:
    """The frames preprocessed, ``(S, 3, H, W)`` in order: frames of one size (cameras of one
    kind, the usual case) in one call, not one call each."""
    arrays = [_checked(frame, sid) for frame, sid in zip(frames, session_ids, strict=True)]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        by_shape.setdefault(array.shape, []).append(i)
    if len(by_shape) == 1:
        return preprocess_frames(np.stack(arrays), spec)
    out: list[torch.Tensor | None] = [None] * len(arrays)
    for rows in by_shape.values():
        group = preprocess_frames(np.stack([arrays[i] for i in rows]), spec)
        for row, i in enumerate(rows):
            out[i] = group[row]
    return torch.stack([t for t in out if t is not None])


def _checked(frame: np.ndarray, session_id: str) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(
            f"session {session_id!r}: expected one (height, width, 3) RGB frame, "
            f"got shape {tuple(array.shape)}"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"session {session_id!r}: expected a uint8 frame, got {array.dtype}")
    return array
