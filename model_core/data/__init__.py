"""Procedural action-recognition data: synthetic clips and streams, and video files of them.

Importing this package needs numpy only; writing and reading video files imports PyAV on use.
"""

from model_core.data.shapes import SHAPE_NAMES
from model_core.data.synthetic import (
    CLASS_NAMES,
    HELDOUT_SEEDS,
    IDLE_LABEL,
    NUM_CLASSES,
    REVERSED_PAIRS,
    TRAIN_SEEDS,
    Action,
    Actor,
    ActorState,
    ActorTrack,
    Clip,
    ClipSpec,
    Scene,
    Segment,
    Stream,
    generate_batch,
    generate_clip,
    generate_stream,
    label_for_seed,
)
from model_core.data.variety import LOOK_RANGES, SCENES

__all__ = [
    "CLASS_NAMES",
    "HELDOUT_SEEDS",
    "IDLE_LABEL",
    "LOOK_RANGES",
    "NUM_CLASSES",
    "REVERSED_PAIRS",
    "SCENES",
    "SHAPE_NAMES",
    "TRAIN_SEEDS",
    "Action",
    "Actor",
    "ActorState",
    "ActorTrack",
    "Clip",
    "ClipSpec",
    "Scene",
    "Segment",
    "Stream",
    "generate_batch",
    "generate_clip",
    "generate_stream",
    "label_for_seed",
]
