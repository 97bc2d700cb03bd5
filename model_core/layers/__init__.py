"""Building blocks of vidrec's video transformers, one job per module, re-exported flat."""

from .affine_shift import AffineShiftMixer
from .attention import Attention
from .block import Block, TokenMixer
from .drop import DropPath
from .grouping import FrameGrouping, JointGrouping, LeapPairGrouping, TokenGrouping
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pos_embed import resample_pos_embed, sincos_2d
from .shift import ShiftSegment, TemporalShift, shift_along, shift_frames

__all__ = [
    "AffineShiftMixer",
    "Attention",
    "Block",
    "DropPath",
    "FrameGrouping",
    "JointGrouping",
    "LeapPairGrouping",
    "Mlp",
    "PatchEmbed",
    "ShiftSegment",
    "TemporalShift",
    "TokenGrouping",
    "TokenMixer",
    "resample_pos_embed",
    "shift_along",
    "shift_frames",
    "sincos_2d",
]
