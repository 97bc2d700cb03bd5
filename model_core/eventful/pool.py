"""A preallocated pool of session slots on one device.

The pool owns one ``SessionState`` with a row per slot, allocated (and measured) at start-up,
and the bookkeeping of which slot is in use and with which budget. ``view`` hands a step the
rows of its batch: a slice (no copy) when the slot ids are consecutive, otherwise a gathered
copy that ``commit`` writes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .policy import KEEP_ALL, Budget
from .state import SessionState, StateSpec, allocate_state


@dataclass
class SlotInfo:
    """Bookkeeping of one slot in use: its budget and its totals since it was opened."""

    budget: Budget
    frames: int = 0
    macs: int = 0
    dense_macs: int = 0


class SlotPool:
    """``capacity`` session slots of ``spec`` on ``device``.

    Args:
        spec: sizes of one session's state.
        capacity: slots to preallocate.
        device: where the state lives.
        dtype: floating type of the caches.
    """

    def __init__(
        self,
        spec: StateSpec,
        capacity: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.spec = spec
        self.capacity = capacity
        self.state = allocate_state(spec, capacity, device=device, dtype=dtype)
        self.bytes_per_slot = self.state.nbytes // capacity
        self.slots: dict[int, SlotInfo] = {}

    @property
    def free_slots(self) -> list[int]:
        return [s for s in range(self.capacity) if s not in self.slots]

    def open(self, budget: Budget = KEEP_ALL) -> int:
        """Takes the lowest free slot for a new session, cleared; returns its id."""
        free = self.free_slots
        if not free:
            raise RuntimeError(f"all {self.capacity} session slots are in use")
        slot = free[0]
        self.slots[slot] = SlotInfo(budget)
        self.reset(slot)
        return slot

    def close(self, slot: int) -> None:
        """Frees ``slot``; its tensors are cleared when it is next opened."""
        self._info(slot)
        del self.slots[slot]

    def reset(self, slot: int) -> None:
        """Clears ``slot`` so that its next frame is a first frame (full compute)."""
        info = self._info(slot)
        for tensor in self.state.tensors():
            tensor[slot].zero_()
        info.frames = 0

    def set_budget(self, slot: int, budget: Budget) -> None:
        self._info(slot).budget = budget

    def budget(self, slot: int) -> Budget:
        return self._info(slot).budget

    def info(self, slot: int) -> SlotInfo:
        return self._info(slot)

    def _info(self, slot: int) -> SlotInfo:
        try:
            return self.slots[slot]
        except KeyError:
            raise KeyError(f"slot {slot} is not in use") from None

    def view(self, slot_ids: Sequence[int]) -> SessionState:
        """The state rows of ``slot_ids``, in order: a view when consecutive, else a copy."""
        for slot in slot_ids:
            self._info(slot)
        if len(set(slot_ids)) != len(slot_ids):
            raise ValueError("a slot appears twice in one step")
        first = slot_ids[0]
        if list(slot_ids) == list(range(first, first + len(slot_ids))):
            return self.state.map(lambda t: t[first : first + len(slot_ids)])
        index = torch.tensor(slot_ids, device=self.state.frames.device)
        return self.state.map(lambda t: t.index_select(0, index))

    def commit(self, slot_ids: Sequence[int], state: SessionState) -> None:
        """Writes ``state`` back to ``slot_ids`` (nothing to do for a view)."""
        index = torch.tensor(slot_ids, device=self.state.frames.device)
        for target, source in zip(self.state.tensors(), state.tensors(), strict=True):
            if not _shares_storage(target, source):
                target.index_copy_(0, index, source)


def _shares_storage(pool_tensor: Tensor, tensor: Tensor) -> bool:
    return pool_tensor.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr()
