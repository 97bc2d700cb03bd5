"""Turning decoded PyAV frames into uint8 RGB arrays, scaled in the same swscale pass."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """``(width, height)`` with the shorter side at ``short_side``, aspect kept; ``None`` keeps.

    Sizes are rounded to even numbers, which keep swscale on its fast paths.
    """
    if short_side is None:
        return None
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def to_rgb(frame: VideoFrame, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 RGB of ``frame``, resized to ``size`` (width, height) when given.

    Colour conversion and scaling happen in one swscale call, which costs little more than the
    conversion alone; scaling a full-size RGB array afterwards would cost far more.
    """
    if size is None:
        rgb = frame.reformat(format="rgb24")
    else:
        rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    # rgb24 always converts to uint8; the stub's return type is the union over all formats.
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)
