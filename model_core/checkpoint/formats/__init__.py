"""The checkpoint layouts ``load_checkpoint`` knows, tried in order; the first match wins.

Order matters where layouts nest: the TokShift and X-ViT releases hold timm-like keys under
``base_model.``, and a vidrec state dict is a timm state dict plus vidrec-only keys.
"""

from __future__ import annotations

from model_core.checkpoint.errors import CheckpointError

from .base import Converted, Layout, Source, strip_wrapper_prefixes
from .bundle import BUNDLE
from .timm_vit import TIMM_VIT, VIDREC_STATE_DICT
from .tokshift import LAPS_RELEASE, TOKSHIFT_V1, TOKSHIFT_V2
from .xvit import XVIT_RELEASE

LAYOUTS: tuple[Layout, ...] = (
    BUNDLE,
    TOKSHIFT_V1,
    XVIT_RELEASE,
    LAPS_RELEASE,
    TOKSHIFT_V2,
    VIDREC_STATE_DICT,
    TIMM_VIT,
)

_EXAMPLE_KEYS = 5


def detect_layout(source: Source) -> Layout:
    """The first layout that matches ``source``.

    Raises:
        CheckpointError: no layout matches; the message names the known ones.
    """
    for layout in LAYOUTS:
        if layout.matches(source):
            return layout
    examples = ", ".join(list(source.state)[:_EXAMPLE_KEYS])
    known = "\n".join(f"  {layout.name}: {layout.description}" for layout in LAYOUTS)
    raise CheckpointError(
        f"{source.path}: no known checkpoint layout matches its {len(source.state)} tensors "
        f"(first keys: {examples}). Known layouts:\n{known}"
    )


__all__ = [
    "LAYOUTS",
    "Converted",
    "Layout",
    "Source",
    "detect_layout",
    "strip_wrapper_prefixes",
]
