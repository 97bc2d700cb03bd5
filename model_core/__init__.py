"""vidrec's model library: pure-PyTorch video transformers (TokShift, LAPS, X-ViT, VAST,
factorised, joint, frame-average), their preprocessing, checkpoints and FLOP counts.

Never imports the service side (fastapi, redis, pydantic).
"""

from model_core.checkpoint import (
    CheckpointError,
    LoadResult,
    load_bundle,
    load_checkpoint,
    save_bundle,
)
from model_core.config import ModelConfig, Preprocessing
from model_core.flops import FlopCount, count_flops
from model_core.models import VideoTransformer, create_model, get_config, list_models
from model_core.preprocess import preprocess_frames

__all__ = [
    "CheckpointError",
    "FlopCount",
    "LoadResult",
    "ModelConfig",
    "Preprocessing",
    "VideoTransformer",
    "count_flops",
    "create_model",
    "get_config",
    "list_models",
    "load_bundle",
    "load_checkpoint",
    "preprocess_frames",
    "save_bundle",
]
