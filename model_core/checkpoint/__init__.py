"""Checkpoints: ``load_checkpoint`` for vidrec bundles, timm ViTs and the official TokShift and
X-ViT releases, and vidrec's own one-file bundle (``save_bundle`` / ``load_bundle``).

One job per module: ``reader`` reads files, ``formats`` detects and renames layouts, ``adapt``
fits image-ViT tensors to a family, ``apply`` matches keys and loads, ``bundle`` writes and
reads bundles, ``loader`` ties them together. docs/CHECKPOINTS.md has the formats.
"""

from .bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    load_bundle,
    read_bundle_config,
    read_training_record,
    save_bundle,
    save_weights,
    training_chain,
    update_bundle_training,
)
from .errors import CheckpointError
from .formats import LAYOUTS
from .loader import load_checkpoint
from .result import LoadResult

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "LAYOUTS",
    "CheckpointError",
    "LoadResult",
    "load_bundle",
    "load_checkpoint",
    "read_bundle_config",
    "read_training_record",
    "save_bundle",
    "save_weights",
    "training_chain",
    "update_bundle_training",
]
