"""Token-selection policies and the per-step selection they produce.

A budget is a per-session setting that may change between frames. Every gate of a session's
encoder applies the same budget: it ranks tokens by the norm of their accumulated error (the
new input minus the gate's reference) and keeps:

- ``TopR(r)``: the ``r`` tokens with the largest error;
- ``TopFraction(f)``: the ``ceil(f·N)`` tokens with the largest error;
- ``Threshold(t)``: every token whose error norm exceeds ``t`` (at least one); or
  ``Threshold((t_qkv, t_proj, t_mlp))``, one threshold per gate of a block. With
  ``input=t_in`` a gate before the patch embedding also re-embeds only the patches whose pixels
  (as the model sees them, normalised) moved more than ``t_in`` in norm since they were last
  embedded; without it every patch is embedded every frame.

Why a threshold per gate: a token the qkv gate leaves stale keeps its old key and value, which
every query of the frame reads, while a token the projection or MLP gate leaves stale affects its
own row only. On the shipped live model, recomputing every token at the qkv gate alone (with
threshold 1 at the others) removed most of the difference from the dense outputs, and doing so
at the MLP gate almost none (docs/EVENTFUL.md, "Policies and batching"), so a tighter qkv
threshold and looser projection and MLP thresholds buy more accuracy per MAC.

The first ``pinned`` tokens of a plan (the engine pins the class token unless told not to) are
selected whatever their error: a top-r or top-fraction budget spends one of its slots on each,
a threshold adds them. The class token is what the temporal head reads from every frame, so a
stale one is a stale feature; it is one token of ``N``.

Top-r and top-fraction make every session of a batch select a known number of tokens, so a batch
of equal budgets runs densely. Otherwise the batch is padded to the largest selection: padding
repeats a selected index (so scatters write the same row twice, harmlessly) and a mask removes
the padding from every delta that is summed (the attention-value accumulator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TopR:
    """Keep the ``r`` tokens with the largest error norm."""

    r: int

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"TopR needs r >= 1, got {self.r}")


@dataclass(frozen=True)
class TopFraction:
    """Keep the ``ceil(fraction · tokens)`` tokens with the largest error norm."""

    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"TopFraction needs 0 < fraction <= 1, got {self.fraction}")


GATES = ("qkv", "proj", "mlp")
"""The three gates of a block, in the order they run (and of per-gate thresholds)."""


@dataclass(frozen=True)
class Threshold:
    """Keep every token whose error norm exceeds the threshold (at least one token).

    ``threshold`` is one number for every gate, or three: for the gates before the qkv
    projection, the output projection and the MLP (``GATES`` order).
    """

    threshold: float | tuple[float, float, float]
    input: float | None = None  # the input gate's threshold (patch pixels); None: embed all

    def __post_init__(self) -> None:
        if isinstance(self.threshold, list):  # a JSON array
            object.__setattr__(self, "threshold", tuple(self.threshold))
        if self.input is not None and (
            isinstance(self.input, bool)
            or not isinstance(self.input, int | float)
            or not self.input >= 0
        ):
            raise ValueError(f"Threshold's input threshold must be a number >= 0, got {self.input}")
        many = isinstance(self.threshold, tuple)
        values = self.threshold if isinstance(self.threshold, tuple) else (self.threshold,)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if (many and len(values) != len(GATES)) or not numbers or not all(v >= 0 for v in values):
            raise ValueError(
                f"Threshold needs one threshold >= 0 or {len(GATES)} (qkv, proj, mlp), "
                f"got {self.threshold}"
            )

    @property
    def per_gate(self) -> tuple[float, float, float]:
        """The threshold of each gate, in ``GATES`` order."""
        if isinstance(self.threshold, tuple):
            return self.threshold
        return (self.threshold,) * 3


Budget = TopR | TopFraction | Threshold

KEEP_ALL: Budget = TopFraction(1.0)
"""Recompute every token: the dense model, frame by frame."""


def fixed_count(budget: Budget, tokens: int) -> int | None:
    """Tokens ``budget`` keeps out of ``tokens``, or None when it depends on the errors."""
    if isinstance(budget, TopR):
        return min(budget.r, tokens)
    if isinstance(budget, TopFraction):
        return max(1, min(tokens, math.ceil(budget.fraction * tokens - 1e-9)))
    return None


@dataclass(frozen=True)
class BatchPlan:
    """What every gate of one batched step selects, per session.

    Attributes:
        tokens: tokens per frame ``N``.
        fixed: per session, the count its budget fixes, or None (threshold).
        thresholds: ``(S, 3)`` error-norm thresholds per session and gate (``GATES``);
            ``inf`` for sessions with a fixed count.
        fresh: per session, True on its first frame (everything recomputed).
        pinned: the first ``pinned`` tokens are selected at every gate, whatever their error.
        inputs: per session, its input gate's threshold, or None to embed every patch (no input
            gate, or a first frame); empty means None for all.
    """

    tokens: int
    fixed: tuple[int | None, ...]
    thresholds: Tensor
    fresh: tuple[bool, ...]
    pinned: int = 0
    inputs: tuple[float | None, ...] = ()

    @classmethod
    def build(
        cls,
        budgets: Sequence[Budget],
        fresh: Sequence[bool],
        tokens: int,
        device: torch.device | None = None,
        pinned: int = 0,
    ) -> BatchPlan:
        if len(budgets) != len(fresh):
            raise ValueError(f"{len(budgets)} budgets for {len(fresh)} sessions")
        if not 0 <= pinned <= tokens:
            raise ValueError(f"pinned must lie in [0, {tokens}], got {pinned}")
        fixed = tuple(
            tokens if first else fixed_count(b, tokens)
            for b, first in zip(budgets, fresh, strict=True)
        )
        thresholds = torch.tensor(
            [b.per_gate if isinstance(b, Threshold) else (math.inf,) * len(GATES) for b in budgets],
            device=device,
        ).reshape(len(budgets), len(GATES))
        inputs = tuple(
            b.input if isinstance(b, Threshold) and not first else None
            for b, first in zip(budgets, fresh, strict=True)
        )
        return cls(tokens, fixed, thresholds, tuple(fresh), pinned, inputs)

    @property
    def sessions(self) -> int:
        return len(self.fixed)

    @property
    def all_full(self) -> bool:
        """Every session keeps every token whatever the errors: gates need not compare."""
        return all(c == self.tokens for c in self.fixed)

    def input_plan(self, patches: int) -> BatchPlan:
        """The plan of the input gate over ``patches`` patches: a threshold for the sessions that
        set one, every patch for the others."""
        inputs = self.inputs or (None,) * self.sessions
        thresholds = torch.tensor(
            [[math.inf if t is None else t] * len(GATES) for t in inputs],
            device=self.thresholds.device,
        ).reshape(self.sessions, len(GATES))
        fixed = tuple(patches if t is None else None for t in inputs)
        return BatchPlan(patches, fixed, thresholds, self.fresh)

    @property
    def gated(self) -> tuple[bool, ...]:
        """Per session, whether its gates' decisions depend on the errors (for accounting)."""
        return tuple(c != self.tokens for c in self.fixed)


@dataclass(frozen=True)
class Selection:
    """The tokens one gate selected for every session of a batch.

    Attributes:
        index: ``(S, M)`` token ids, or None when every session keeps all ``N`` tokens in order.
        mask: ``(S, M)`` True on real selections, False on padding; None without padding.
        counts: per session, the tokens it really selected (padding excluded).
    """

    index: Tensor | None
    mask: Tensor | None
    counts: tuple[int, ...]

    @property
    def full(self) -> bool:
        return self.index is None


def full_selection(sessions: int, tokens: int) -> Selection:
    return Selection(None, None, (tokens,) * sessions)


def select_tokens(norms: Tensor, plan: BatchPlan, gate: int = 0) -> Selection:
    """Applies ``plan`` to the error norms ``(S, N)`` at gate ``gate`` (an index in ``GATES``):
    the largest errors first, padded if needed."""
    sessions, tokens = norms.shape
    if plan.pinned:
        norms = norms.clone()
        norms[:, : plan.pinned] = math.inf  # ranked first, and above any threshold
    fixed = torch.tensor([-1 if c is None else c for c in plan.fixed], device=norms.device)
    counts_t = fixed
    if any(c is None for c in plan.fixed):
        above = (norms > plan.thresholds[:, gate, None]).sum(dim=1).clamp(min=1)
        counts_t = torch.where(fixed < 0, above, fixed)
    counts = tuple(int(c) for c in counts_t.tolist())
    width = max(counts)
    if min(counts) == tokens:
        return full_selection(sessions, tokens)
    # Sorted, so each session's real picks come first and padding sits at the end.
    index = norms.topk(width, dim=1, sorted=True).indices  # (S, M)
    if min(counts) == width:
        return Selection(index, None, counts)
    valid = torch.arange(width, device=norms.device)[None, :] < counts_t[:, None]  # (S, M)
    index = torch.where(valid, index, index[:, :1])
    return Selection(index, valid, counts)
