"""Light augmentation that keeps every class's meaning, and real codec round trips.

Half of the classes are defined by the order of the frames (``REVERSED_PAIRS``) and most by a
direction on screen, so the usual video augmentations would change labels: a temporal flip turns
``grow`` into ``shrink``, a horizontal flip turns ``move_left`` into ``move_right`` and
``rotate_clockwise`` into ``rotate_anticlockwise``, a vertical flip swaps up and down. Only
changes that are the same in every frame of a clip and mirror nothing are applied: a small
translation and a brightness / contrast change. ``CodecAugment`` passes clips through H.264, as
the service's inputs are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model_core.config import Preprocessing
from model_core.data.video_io import decode_video_bytes, encode_video_bytes


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


@dataclass(frozen=True)
class CodecAugment:
    """Round-trips a share of the training clips through a real H.264 encoder and decoder.

    Uploads and camera streams reach a model through a lossy codec, whose frame-to-frame changes
    (blocks that flicker, edges that shimmer) a motion-sensitive model trained on clean frames
    reads as motion: a model that told ``stay_still`` apart from the rotations on generated
    frames was torn between them on the same clip as an MP4. Showing it codec output at a range
    of qualities during training teaches it to ignore those changes. The clip's labels and actor
    targets are unchanged: the codec moves no object.

    Attributes:
        probability: Share of the clips that are round-tripped.
        crf: Range of x264 constant-rate factors drawn from (16: near lossless, as vidrec writes
            test files; 32: visibly blocky, as a low-bit-rate camera).
    """

    probability: float = 0.5
    crf: tuple[int, int] = (16, 32)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"codec probability must be in [0, 1], got {self.probability}")
        if not 0 <= self.crf[0] <= self.crf[1] <= 51:
            raise ValueError(f"x264 crf range must lie in [0, 51], got {self.crf}")

    def apply(self, frames: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
        """``frames`` ``(T, H, W, 3)`` uint8, round-tripped or returned as they are, as ``rng``
        draws (two draws per clip either way, so later clips' draws do not depend on this one)."""
        chosen = rng.random() < self.probability
        crf = int(rng.integers(self.crf[0], self.crf[1] + 1))
        if not chosen:
            return frames
        # One thread: the batch thread shares the cores. No macroblock tree: on clips this short
        # x264's mbtree read something left over from earlier encodes (same frames, same
        # options, a different bitstream now and then under load), and a batch must be a pure
        # function of its seeds; the quality it adds does not matter to an augmentation.
        options = {"crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
        decoded = decode_video_bytes(encode_video_bytes(frames, fps, options=options))
        return decoded[:, : frames.shape[1], : frames.shape[2]]  # odd sides were padded


@dataclass(frozen=True)
class FrameRateAugment:
    """Generates each training clip at its own frame rate, drawn log-uniformly from a range.

    The generator's speeds are physical (per second) and a clip's frame rate only sets how far
    the actor moves between two frames, so a model trained at one rate has seen one motion per
    frame: on 8 frames at 5 fps or 20 fps, or on a longer clip sampled down to its 8 frames,
    the shipped bundles lost up to 13 points (docs/MODELS.md, "Clips of other lengths and frame
    rates"). Drawing the rate per clip shows the model each action at several speeds per frame.
    Labels are unchanged: the same action at another rate is the same action.

    Attributes:
        low: Lowest frame rate (frames per second).
        high: Highest frame rate.
    """

    low: float = 5.0
    high: float = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(f"frame rates need 0 < low <= high, got {self.low}, {self.high}")

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` frame rates, log-uniform (as many clips halve the rate as double it)."""
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), count))
