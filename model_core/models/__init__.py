"""Video transformer models and their registry."""

from .families import FAMILIES, BlockContext, BlockParts, Family, get_family
from .heads import FrameAverageHead, TemporalAttentionHead, TemporalTransformerHead
from .registry import VIT_SIZES, create_model, get_config, list_models, register_config
from .video_transformer import VideoTransformer

__all__ = [
    "FAMILIES",
    "VIT_SIZES",
    "BlockContext",
    "BlockParts",
    "Family",
    "FrameAverageHead",
    "TemporalAttentionHead",
    "TemporalTransformerHead",
    "VideoTransformer",
    "create_model",
    "get_config",
    "get_family",
    "list_models",
    "register_config",
]
