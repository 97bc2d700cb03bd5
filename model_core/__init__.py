"""vidrec's model library: pure-PyTorch video transformers (TokShift, LAPS, X-ViT, VAST,
factorised, joint, frame-average), their preprocessing, checkpoints and FLOP counts.

Never imports the service side (fastapi, redis, pydantic).
"""

from model_core.config import ModelConfig, Preprocessing
from model_core.models import VideoTransformer, create_model, get_config, list_models

__all__ = [
    "ModelConfig",
    "Preprocessing",
    "VideoTransformer",
    "create_model",
    "get_config",
    "list_models",
]
