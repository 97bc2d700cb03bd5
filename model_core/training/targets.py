"""Per-frame ground truth about the actor, from the generator, for auxiliary supervision.

A ViT trained from scratch on these clips with the clip label alone sits at chance for thousands
of steps: one label per clip says nothing about where in 8 × 49 patches the small actor is, and
the attention has to find it before any temporal operator can compare frames. The generator
knows the actor's state in every frame, so training can also ask (through small probe heads that
are not part of the model) which patch tokens cover the actor and, from each frame's CLS token,
where the actor is, how big, how turned and how visible. Those dense targets make the backbone
find the actor within a few hundred steps; the clip label then only has to teach the temporal
part. See docs/DATASET.md, "Training".

That still leaves the order-dependent pairs to the clip label alone, and a small model trained on a
CPU learns "moves sideways" long before "moves left": the direction is one bit per clip. The
motion targets (``actor_motion``) ask, at every frame, how the state changed since the previous
frame, read from the features *after* the model's temporal operator; that is the quantity the
pairs differ by, given densely.

The turn is the pair that still fails: one frame's orientation is a detail of a few pixels inside
one patch, and a readout from the CLS token never learns it (research/NOTES.md, "A model built
to see it"). The turn targets (``actor_turn``) ask for it where it is: at the token of the patch
that holds the actor's centre (``actor_patches``), the orientation in that frame and, for the
families whose patch tokens see the neighbouring frames, how far it turned since the previous one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model_core.config import Preprocessing
from model_core.data import ActorTrack

STATE_FIELDS = ("x", "y", "radius", "sin_angle", "cos_angle", "opacity")
# Raw positions (frame fractions, std ~0.2) and radii (~0.1) vary too little for a squared error
# to pull on the backbone next to the cross-entropy: a probe trained on them learned the mean and
# nothing else. Centred and scaled, every target spans about [-1, 1], as sin and cos do.
POSITION_SCALE = 4.0
RADIUS_CENTRE, RADIUS_SCALE = 0.12, 20.0
MASK_MARGIN = 0.04  # a patch counts as actor when its centre is within radius + margin
MASK_MIN_OPACITY = 0.3  # a fading actor below this is treated as absent

MOTION_FIELDS = ("dx", "dy", "dradius", "dangle", "dopacity")
# Per-frame changes of the scaled states at the training frame rate are small (a move covers ~0.2
# of the scaled position per frame at 10 fps, a rotation ~0.3 rad); these bring each to about 1.
MOTION_SCALE = (5.0, 5.0, 5.0, 3.0, 2.0)


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
            (_model_coordinates(track.x, crop) - 0.5) * POSITION_SCALE,
            (_model_coordinates(track.y, crop) - 0.5) * POSITION_SCALE,
            (track.radius / crop - RADIUS_CENTRE) * RADIUS_SCALE,
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


def actor_patches(states: Tensor, grid: int) -> Tensor:
    """``(B, T)`` long: raster index of the patch that holds the actor's centre, from ``(B, T, 6)``
    ``actor_states`` (a centre outside the input counts as the nearest edge patch)."""
    centre = states[..., :2] / POSITION_SCALE + 0.5  # (B, T, 2) model-input fractions, x then y
    column, row = (centre * grid).floor().long().clamp(0, grid - 1).unbind(-1)
    return row * grid + column


TURN_FIELDS = ("sin_angle", "cos_angle", "dangle")


def actor_turn(states: Tensor) -> tuple[Tensor, Tensor]:
    """The actor's orientation and its change, from ``(B, T, 6)`` ``actor_states``.

    Returns ``(targets, weights)``, both ``(B, T, 3)`` in the order of ``TURN_FIELDS``: sine and
    cosine of the angle in every frame, weighted by how visible the actor is; the turn since the
    previous frame scaled as in ``actor_motion``, weighted as there, and 0 with weight 0 in the
    first frame, which has no previous one.
    """
    motion, motion_weights = actor_motion(states)  # (B, T - 1, 5)
    dangle = MOTION_FIELDS.index("dangle")
    turn = F.pad(motion[..., dangle], (1, 0))  # (B, T)
    turn_weight = F.pad(motion_weights[..., dangle], (1, 0))
    *_, sin, cos, opacity = states.unbind(-1)  # each (B, T), as in STATE_FIELDS
    targets = torch.stack([sin, cos, turn], dim=-1)
    weights = torch.stack([opacity, opacity, turn_weight], dim=-1)
    return targets, weights


def actor_motion(states: Tensor) -> tuple[Tensor, Tensor]:
    """Frame-to-frame change of the actor's state, from ``(B, T, 6)`` ``actor_states``.

    Returns ``(targets, weights)``, both ``(B, T - 1, 5)`` in the order of ``MOTION_FIELDS``,
    for frames 1 to T-1 (each against the frame before). Position and angle changes weigh by how
    visible the actor is in both frames; size and opacity changes always count. Angles are
    compared on the circle, so a turn across 180 degrees is a small change.
    """
    x, y, radius, sin, cos, opacity = states.unbind(-1)  # each (B, T)
    turn = torch.atan2(
        sin[:, 1:] * cos[:, :-1] - cos[:, 1:] * sin[:, :-1],
        cos[:, 1:] * cos[:, :-1] + sin[:, 1:] * sin[:, :-1],
    )
    change = torch.stack(
        [x.diff(dim=1), y.diff(dim=1), radius.diff(dim=1), turn, opacity.diff(dim=1)], dim=-1
    )
    targets = change * change.new_tensor(MOTION_SCALE)
    visible = torch.minimum(opacity[:, 1:], opacity[:, :-1])
    ones = torch.ones_like(visible)
    weights = torch.stack([visible, visible, ones, visible, ones], dim=-1)
    return targets, weights
