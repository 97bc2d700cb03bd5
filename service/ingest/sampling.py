"""Which frames to take: clip sampling plans, spatial crops and frame-rate sampling of live sources.

Pure functions over frame timestamps; no decoding happens here, so the plans are easy to test and
the decoder can fetch exactly the frames a plan names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Sampling:
    """How frames are chosen from a clip.

    Attributes:
        mode: ``"uniform"``: the clip is cut into ``num_frames`` equal segments (in time, so
            variable frame rate is handled) and the frame shown at each segment's sample point is
            taken (TSN-style). ``"dense"``: ``num_frames`` consecutive frames ``stride`` apart.
        num_frames: Frames per view (T).
        stride: Frame step in dense mode.
        num_clips: Temporal views. Uniform: clip c samples each segment at fraction
            (c + 0.5) / num_clips. Dense: windows spread evenly from start to end.
        num_crops: Spatial views: 1 keeps the full frame, 3 takes three squares of the short
            side along the long side (start, centre, end), the usual test-time protocol.
    """

    mode: Literal["uniform", "dense"] = "uniform"
    num_frames: int = 8
    stride: int = 4
    num_clips: int = 1
    num_crops: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("uniform", "dense"):
            raise ValueError(f"unknown sampling mode {self.mode!r}")
        if self.num_frames < 1 or self.stride < 1 or self.num_clips < 1:
            raise ValueError("num_frames, stride and num_clips must be at least 1")
        if self.num_crops not in (1, 3):
            raise ValueError("num_crops must be 1 or 3")

    @property
    def num_views(self) -> int:
        """Views produced: clips times crops."""
        return self.num_clips * self.num_crops


def clip_duration(times_s: npt.NDArray[np.float64]) -> float:
    """Duration covered by frames shown at ``times_s`` (sorted, first at 0).

    The last frame is shown for the median frame interval, so a 10-frame 10 fps clip lasts 1 s.
    """
    if len(times_s) == 1:
        return 0.0
    step = float(np.median(np.diff(times_s)))
    return float(times_s[-1]) + step


def plan_indices(times_s: npt.NDArray[np.float64], sampling: Sampling) -> npt.NDArray[np.int64]:
    """Frame indices (presentation order) to take, per temporal view.

    Args:
        times_s: Presentation time of every frame in seconds, sorted, relative to the first.
        sampling: The plan.

    Returns:
        Array ``(num_clips, num_frames)`` of indices into ``times_s``. A clip shorter than the plan
        repeats frames rather than failing: one frame gives T copies of it.
    """
    n = len(times_s)
    if n == 0:
        raise ValueError("a clip needs at least one frame")
    if sampling.mode == "uniform":
        return _uniform(times_s, sampling.num_frames, sampling.num_clips)
    return _dense(n, sampling.num_frames, sampling.stride, sampling.num_clips)


def _uniform(
    times_s: npt.NDArray[np.float64], num_frames: int, num_clips: int
) -> npt.NDArray[np.int64]:
    duration = clip_duration(times_s)
    segment = duration / num_frames
    offsets = (np.arange(num_clips) + 0.5) / num_clips  # (clips,)
    targets = (np.arange(num_frames)[None, :] + offsets[:, None]) * segment  # (clips, T) seconds
    # The frame on screen at time t is the last one that started at or before t.
    idx = np.searchsorted(times_s, targets, side="right") - 1
    return np.clip(idx, 0, len(times_s) - 1).astype(np.int64)


def _dense(n: int, num_frames: int, stride: int, num_clips: int) -> npt.NDArray[np.int64]:
    span = (num_frames - 1) * stride + 1
    room = max(n - span, 0)
    if num_clips == 1:
        starts = np.array([room // 2])  # centred, as the usual single-clip test protocol does
    else:
        starts = np.round(np.linspace(0, room, num_clips)).astype(np.int64)
    idx = starts[:, None] + np.arange(num_frames)[None, :] * stride  # (clips, T)
    return np.minimum(idx, n - 1).astype(np.int64)


def crop_boxes(height: int, width: int, num_crops: int) -> list[tuple[int, int, int, int]]:
    """Spatial views as ``(top, left, height, width)`` boxes.

    Args:
        height: Frame height.
        width: Frame width.
        num_crops: 1 (the whole frame) or 3 (squares of the short side at start, centre, end of
            the long side).
    """
    if num_crops == 1:
        return [(0, 0, height, width)]
    side = min(height, width)
    if width >= height:
        return [(0, left, side, side) for left in (0, (width - side) // 2, width - side)]
    return [(top, 0, side, side) for top in (0, (height - side) // 2, height - side)]


def spatial_views(frames: npt.NDArray[np.uint8], num_crops: int) -> npt.NDArray[np.uint8]:
    """Cuts ``(T, H, W, 3)`` frames into ``(num_crops, T, h, w, 3)`` views."""
    boxes = crop_boxes(frames.shape[1], frames.shape[2], num_crops)
    return np.stack([frames[:, t : t + h, left : left + w] for t, left, h, w in boxes])


class FpsSampler:
    """Keeps frames of a live stream at a target rate, judged on their timestamps.

    A frame is kept when its time reaches the next due time; the due time then advances by one
    period from the previous due time (not from the frame), so a 25 fps source sampled at 10 fps
    keeps an even 10 frames a second instead of drifting to 12.5 or 8.3.
    """

    def __init__(self, target_fps: float | None) -> None:
        """Creates a sampler.

        Args:
            target_fps: Frames per second to keep; ``None`` keeps every frame.
        """
        self._period = None if target_fps is None else 1.0 / target_fps
        self._next: float | None = None

    def reset(self) -> None:
        """Forgets the schedule (after a reconnect the source's clock restarts)."""
        self._next = None

    def accept(self, time_s: float | None) -> bool:
        """Whether the frame at ``time_s`` is kept.

        A frame without a time is kept only when nothing is scheduled yet: the first frame of an
        RTSP session often has no timestamp, and the schedule starts from the next one.
        """
        if self._period is None:
            return True
        if time_s is None:
            return self._next is None
        # A time far behind the schedule means the source clock restarted: start over.
        if self._next is None or time_s < self._next - 2 * self._period:
            self._next = time_s + self._period
            return True
        if time_s + 1e-6 < self._next:
            return False
        # Jump ahead when the source paused, rather than bursting to catch up.
        self._next = max(self._next + self._period, time_s + self._period / 2)
        return True
