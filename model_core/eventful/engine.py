"""The eventful streaming engine: one model instance, a pool of session slots, batched steps.

engine = EventfulEngine(model, capacity=32, stride=4)
slot = engine.open(TopFraction(0.25))
result = engine.step(frames, [slot])          # frames (S, 3, H, W), normalised
result.logits[0], result.costs[0].gmacs, engine.totals(slot)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from model_core.models import VideoTransformer

from .encoder import EventfulEncoder
from .policy import KEEP_ALL, Budget
from .pool import SlotInfo, SlotPool
from .stream import FrameOutput, stream_step


class EventfulEngine:
    """Serves many streams of one model in batched incremental steps.

    Args:
        model: a plain per-frame ViT video model (``factorized_*`` with ``causal=True`` for
            streaming labels, or ``vit_avg_*``).
        capacity: session slots to preallocate.
        window: frames the temporal head sees (the model's ``num_frames`` by default).
        stride: emit labels every ``stride`` frames of a session.
        device: where the state lives (the model's device by default).
        pin_class_token: recompute the class token (the per-frame feature the head reads) at
            every gate whatever the budget; see ``policy``.
    """

    def __init__(
        self,
        model: VideoTransformer,
        capacity: int,
        window: int | None = None,
        stride: int = 1,
        device: torch.device | str | None = None,
        pin_class_token: bool = True,
    ) -> None:
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}")
        self.encoder = EventfulEncoder(model, window, pin_class_token)
        if self.encoder.spec.window > model.config.num_frames:
            raise ValueError(
                f"window {self.encoder.spec.window} exceeds the model's {model.config.num_frames}"
            )
        self.stride = stride
        self.pool = SlotPool(
            self.encoder.spec, capacity, device or self.encoder.device, self.encoder.dtype
        )

    @property
    def bytes_per_slot(self) -> int:
        return self.pool.bytes_per_slot

    def open(self, budget: Budget = KEEP_ALL) -> int:
        return self.pool.open(budget)

    def close(self, slot: int) -> None:
        self.pool.close(slot)

    def reset(self, slot: int) -> None:
        self.pool.reset(slot)

    def set_budget(self, slot: int, budget: Budget) -> None:
        self.pool.set_budget(slot, budget)

    def totals(self, slot: int) -> SlotInfo:
        """Frames and MACs of the session in ``slot`` since it was opened."""
        return self.pool.info(slot)

    def step(
        self,
        frames: Tensor,
        slot_ids: Sequence[int],
        budgets: Sequence[Budget | None] | None = None,
    ) -> FrameOutput:
        """One frame for each session in ``slot_ids``.

        Args:
            frames: ``(S, 3, H, W)`` normalised frames.
            slot_ids: ``S`` distinct open slots.
            budgets: per session, a budget that replaces the slot's from now on (None keeps it).
        """
        slot_ids = list(slot_ids)
        if frames.shape[0] != len(slot_ids):
            raise ValueError(f"{frames.shape[0]} frames for {len(slot_ids)} slots")
        if budgets is not None:
            for slot, budget in zip(slot_ids, budgets, strict=True):
                if budget is not None:
                    self.pool.set_budget(slot, budget)
        state = self.pool.view(slot_ids)
        output, state = stream_step(
            self.encoder,
            frames.to(self.encoder.device, self.encoder.dtype),
            state,
            [self.pool.budget(s) for s in slot_ids],
            self.stride,
        )
        self.pool.commit(slot_ids, state)
        for slot, cost in zip(slot_ids, output.costs, strict=True):
            info = self.pool.info(slot)
            info.frames += 1
            info.macs += sum(cost.macs.values())
            info.dense_macs += sum(cost.dense_macs.values())
        return output
