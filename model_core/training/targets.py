"""Per-frame ground truth about the actor, from the generator, for auxiliary supervision.

A ViT trained from scratch on these clips with the clip label alone sits at chance for thousands
of steps: one label per clip says nothing about where in 8 × 49 patches the small actor is, and
the attention has to find it before any temporal operator can compare frames. The generator
knows the actor's state in every frame, so training can also ask (through small probe heads that
are not part of the model) which patch tokens cover the actor and, from each frame's CLS token,
where the actor is, how big, how turned and how visible. Those dense targets make the backbone
find the actor within a few hundred steps; the clip label then only has to teach the temporal
part. See docs/DATASET.md, "Training".
"""

from __future__ import annotations

import numpy as np

from model_core.config import Preprocessing
from model_core.data import ActorTrack

STATE_FIELDS = ("x", "y", "radius", "sin_angle", "cos_angle", "opacity")
RADIUS_SCALE = 5.0  # radii are ~0.1 of the frame side; scaled to the other targets' range
MASK_MARGIN = 0.04  # a patch counts as actor when its centre is within radius + margin
MASK_MIN_OPACITY = 0.3  # a fading actor below this is treated as absent


def _model_coordinates(values: np.ndarray, crop_pct: float) -> np.ndarray:
    """Frame fractions to fractions of the model's input after the centre crop.

    ``preprocess_frames`` resizes the short side to ``img_size / crop_pct`` and crops
    ``img_size`` from the centre, so the frame centre stays put and distances grow by
    ``1 / crop_pct``.
    """
    return (values - 0.5) / crop_pct + 0.5


def actor_states(track: ActorTrack, preprocessing: Preprocessing) -> np.ndarray:
    """``(T, 6)`` float32 per-frame targets, in the order of ``STATE_FIELDS``."""
    angle = np.deg2rad(track.angle)
    crop = preprocessing.crop_pct
    return np.stack(
        [
            _model_coordinates(track.x, crop),
            _model_coordinates(track.y, crop),
            track.radius / crop * RADIUS_SCALE,
            np.sin(angle),
            np.cos(angle),
            track.opacity,
        ],
        axis=-1,
    ).astype(np.float32)


def actor_masks(track: ActorTrack, preprocessing: Preprocessing, grid: int) -> np.ndarray:
    """``(T, grid * grid)`` float32: 1 for the patches whose centre lies on the actor.

    The actor is taken as the disc of its circumradius (plus a margin), which covers every
    shape; patches are in raster order, as the model's patch tokens.
    """
    crop = preprocessing.crop_pct
    centres = (np.arange(grid) + 0.5) / grid
    x = _model_coordinates(track.x, crop)[:, None, None]
    y = _model_coordinates(track.y, crop)[:, None, None]
    reach = (track.radius / crop + MASK_MARGIN)[:, None, None]
    inside = (centres[None, None, :] - x) ** 2 + (centres[None, :, None] - y) ** 2 < reach**2
    visible = (track.opacity > MASK_MIN_OPACITY)[:, None, None]
    return (inside & visible).reshape(len(track), grid * grid).astype(np.float32)
