"""Eventful incremental inference for streams: per-session token caches held as explicit state,
a pool of session slots, batched steps and the cost accounting of the Eventful paper.

See docs/EVENTFUL.md for the mechanism, the state layout and the API.
"""

from .accounting import GATES, CostMeter, SessionCost, dense_block_macs, dense_frame_macs
from .encoder import EventfulEncoder
from .engine import EventfulEngine
from .policy import KEEP_ALL, BatchPlan, Budget, Selection, Threshold, TopFraction, TopR
from .pool import SlotInfo, SlotPool
from .state import LayerState, SessionState, StateSpec, allocate_state
from .stream import FrameOutput, stream_step

__all__ = [
    "GATES",
    "KEEP_ALL",
    "BatchPlan",
    "Budget",
    "CostMeter",
    "EventfulEncoder",
    "EventfulEngine",
    "FrameOutput",
    "LayerState",
    "Selection",
    "SessionCost",
    "SessionState",
    "SlotInfo",
    "SlotPool",
    "StateSpec",
    "Threshold",
    "TopFraction",
    "TopR",
    "allocate_state",
    "dense_block_macs",
    "dense_frame_macs",
    "stream_step",
]
