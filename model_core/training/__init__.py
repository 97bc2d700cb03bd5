"""Training and evaluation on the procedural action dataset (``model_core.data``).

One job per module: ``batches`` plans and makes batches of generated clips (on a background
thread or in worker processes), ``augment`` changes them without changing their meaning,
``optim`` holds the optimiser and schedule, ``init`` starting weights, ``loop`` trains,
``evaluate`` scores held-out clips.
"""

from .augment import Augment, CodecAugment, FrameRateAugment, augment_batch
from .batches import Batch, ClipBatches, preprocess_batch
from .evaluate import (
    ClassResult,
    EvalReport,
    PairResult,
    evaluate,
    predict,
    report_from_predictions,
)
from .init import POS_INITS, SINCOS_SCALE, add_sincos_positions
from .loop import StepInfo, TrainConfig, TrainResult, resolve_device, train
from .optim import cosine_with_warmup, param_groups

__all__ = [
    "POS_INITS",
    "SINCOS_SCALE",
    "Augment",
    "Batch",
    "ClassResult",
    "ClipBatches",
    "CodecAugment",
    "EvalReport",
    "FrameRateAugment",
    "PairResult",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "add_sincos_positions",
    "augment_batch",
    "cosine_with_warmup",
    "evaluate",
    "param_groups",
    "predict",
    "preprocess_batch",
    "report_from_predictions",
    "resolve_device",
    "train",
]
