"""Streaming classification over explicit state: the eventful encoder per frame, a ring of the
last ``T`` per-frame CLS features per session, and the model's temporal head over that window
every ``stride`` frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .accounting import SessionCost
from .encoder import EventfulEncoder
from .policy import BatchPlan, Budget
from .state import SessionState


@dataclass(frozen=True)
class FrameOutput:
    """What one step gives for a batch of sessions.

    Attributes:
        features: ``(S, C)`` CLS feature of this frame (after the final LayerNorm).
        tokens: ``(S, N, C)`` all final tokens of this frame.
        logits: per session, ``(classes,)`` logits over its window when it emitted, else None.
        costs: per session, what the step cost and what a dense step would have cost.
        padded: token rows that padding the batch to its largest selection added.
    """

    features: Tensor
    tokens: Tensor
    logits: list[Tensor | None]
    costs: list[SessionCost]
    padded: int

    @property
    def gmacs(self) -> float:
        return sum(c.gmacs for c in self.costs)

    @property
    def dense_gmacs(self) -> float:
        return sum(c.dense_gmacs for c in self.costs)


def window_index(frames: int, window: int) -> list[int]:
    """Ring positions of the last ``min(frames, window)`` frames, oldest first."""
    length = min(frames, window)
    return [(frames - length + j) % window for j in range(length)]


@torch.no_grad()
def stream_step(
    encoder: EventfulEncoder,
    frames: Tensor,
    state: SessionState,
    budgets: Sequence[Budget],
    stride: int = 1,
) -> tuple[FrameOutput, SessionState]:
    """One frame for each of ``S`` sessions: encode, push into the ring, classify when due.

    A session emits labels after its frame count reaches a multiple of ``stride``, over its
    last ``min(frames seen, T)`` features; the first frame after a reset recomputes every token.

    Args:
        encoder: the eventful encoder of the model.
        frames: ``(S, 3, H, W)`` normalised frames, one per session.
        state: the sessions' state (updated in place and returned).
        budgets: per session, the token budget of this frame.
        stride: emit labels every ``stride`` frames.

    Returns:
        The step's outputs and the updated state.
    """
    fresh = (state.frames == 0).tolist()
    plan = BatchPlan.build(
        budgets, fresh, encoder.spec.tokens, device=frames.device, pinned=encoder.pinned
    )
    tokens, meter = encoder.forward_frame(frames, state, plan)
    features = tokens[:, 0]  # (sessions, dim)

    window = state.ring.shape[1]
    slot = torch.remainder(state.frames, window)  # (sessions,)
    rows = torch.arange(state.sessions, device=frames.device)
    state.ring[rows, slot] = features
    state.frames += 1

    logits: list[Tensor | None] = [None] * state.sessions
    seen = state.frames.tolist()
    due = [s for s, count in enumerate(seen) if count % stride == 0]
    model = encoder.model
    # Sessions with equal window lengths share one head call (all of them once warmed up).
    for length in sorted({min(seen[s], window) for s in due}):
        group = [s for s in due if min(seen[s], window) == length]
        clips = torch.stack([state.ring[s, window_index(seen[s], window)] for s in group])
        # (group, length, dim)
        out = model.forward_head(clips[:, :, None])  # (group, classes)
        head_macs = sum(model.head.macs(length).values())
        for row, s in enumerate(group):
            logits[s] = out[row]
            meter.costs[s].macs["head"] += head_macs
            meter.costs[s].dense_macs["head"] += head_macs
    output = FrameOutput(features, tokens, logits, meter.costs, meter.padded)
    return output, state
