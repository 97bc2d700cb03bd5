"""Light augmentation that keeps every class's meaning.

Half of the classes are defined by the order of the frames (``REVERSED_PAIRS``) and most by a
direction on screen, so the usual video augmentations would change labels: a temporal flip turns
``grow`` into ``shrink``, a horizontal flip turns ``move_left`` into ``move_right`` and
``rotate_clockwise`` into ``rotate_anticlockwise``, a vertical flip swaps up and down. Only
changes that are the same in every frame of a clip and mirror nothing are applied: a small
translation and a brightness / contrast change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from model_core.config import Preprocessing


@dataclass(frozen=True)
class Augment:
    """Per-clip augmentation ranges.

    Attributes:
        max_shift: Largest translation in pixels along each axis; the frame's edge is repeated
            into the uncovered border.
        brightness: Largest offset added to the [0, 1] pixel values.
        contrast: Largest relative change of contrast (the values scale by ``1 ± contrast``
            about mid-grey).
    """

    max_shift: int = 6
    brightness: float = 0.08
    contrast: float = 0.15

    def __post_init__(self) -> None:
        if self.max_shift < 0 or self.brightness < 0 or not 0 <= self.contrast < 1:
            raise ValueError(f"invalid augmentation ranges: {self}")


def augment_batch(
    inputs: Tensor, spec: Preprocessing, augment: Augment, generator: torch.Generator
) -> Tensor:
    """Applies one random translation and photometric change to each clip, equal in all frames.

    Args:
        inputs: ``(B, T, 3, S, S)`` frames normalised with ``spec``'s mean and std.
        spec: The normalisation the inputs carry.
        augment: The ranges to draw from.
        generator: The source of randomness (a CPU generator), so a batch is reproducible.

    Returns:
        A new tensor of the same shape, still normalised.
    """
    b = inputs.shape[0]
    mean = torch.tensor(spec.mean, dtype=inputs.dtype).view(1, 1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=inputs.dtype).view(1, 1, 3, 1, 1)
    pixels = inputs * std + mean  # back to [0, 1], (B, T, 3, S, S)

    gain = 1 + (torch.rand(b, generator=generator) * 2 - 1) * augment.contrast
    offset = (torch.rand(b, generator=generator) * 2 - 1) * augment.brightness
    pixels = (pixels - 0.5) * gain.view(b, 1, 1, 1, 1) + 0.5 + offset.view(b, 1, 1, 1, 1)

    if augment.max_shift > 0:
        pad = augment.max_shift
        shifts = torch.randint(-pad, pad + 1, (b, 2), generator=generator).tolist()
        size = pixels.shape[-2:]
        shifted = []
        for clip, (dy, dx) in zip(pixels, shifts, strict=True):
            padded = F.pad(clip, (pad, pad, pad, pad), mode="replicate")  # (T, 3, S+2p, S+2p)
            top, left = pad - dy, pad - dx
            shifted.append(padded[..., top : top + size[0], left : left + size[1]])
        pixels = torch.stack(shifted)
    return ((pixels - mean) / std).contiguous()
