"""The ``"varied"`` scene of the procedural dataset: wider looks than the classic scene.

The classic scene (``ClipSpec(scene="classic")``, the default, which every shipped bundle was
trained on) keeps muted, low-contrast textures, an actor of one size range that stands far out
from the background, and mild sensor noise. Models trained on it alone misread clips drawn
otherwise (docs/MODELS.md, "Clips drawn by independent code"): a hard-edged tiled or strongly
textured background, a thin or small actor, a low-contrast one or a slowly panning camera. The
varied scene draws those too:

- **Background**: the classic field, or one flat colour, or a hard-edged checkerboard of 4 to
  24 px tiles, or smooth value noise of strong amplitude with grain, or both; a third of the
  backgrounds pan slowly (at most 0.12 frame sides per second, a fifth of the slowest move), as a
  drifting camera would.
- **Actor**: any classic shape or a thin one (``EXTRA_SHAPE_NAMES``), circumradius 0.06 to 0.18,
  a colour 45 RGB units or more from the background's palette (the classic scene wants 110), and
  a marker of its own size and place.
- **Sensor**: noise of standard deviation 0 to 10.

The ``"fine"`` scene is the varied scene with finer detail (``FINE``): actors down to a
circumradius of 0.04, a marker as small as 0.08 circumradii and nearer the centre, and sizes that
grow from or shrink to 0.035. An actor that small turns or shrinks over only a few pixels, as in
the independent renderer's clips that the bundles trained on ``"varied"`` misread. It draws the
same values as ``"varied"`` mapped onto wider ranges, so a seed's fine clip is its varied clip
with the actor's size and marker changed.

Every draw comes from a generator of its own, spawned after the classic ones, so a seed's classic
clip is unchanged and its varied clip keeps the classic clip's action and timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_core.data.scene import BackgroundParams, pick_colour
from model_core.data.shapes import EXTRA_SHAPE_NAMES, SHAPE_NAMES

__all__ = [
    "FINE",
    "KINDS",
    "LOOK_RANGES",
    "SCENES",
    "VARIED",
    "LookRanges",
    "VariedLook",
    "draw_varied_look",
    "render_varied_plane",
]

SCENES: tuple[str, ...] = ("classic", "varied", "fine")
VARIED_NOISE = (0.0, 10.0)  # sensor noise std, 0-255 units
PAN_SPEED = 0.12  # largest pan of a moving background, frame sides per second
KINDS = ("classic", "flat", "tiled", "noise", "tiled_noise")


@dataclass(frozen=True)
class LookRanges:
    """The ranges an actor's size and marker are drawn from.

    Attributes:
        radius: Circumradius at rest, fraction of the frame side.
        marker_offset: The marker's distance from the centre, in circumradii.
        marker_radius: The marker's radius, in circumradii.
        size_limits: Circumradius range while growing or shrinking, fraction of the frame side.
    """

    radius: tuple[float, float]
    marker_offset: tuple[float, float]
    marker_radius: tuple[float, float]
    size_limits: tuple[float, float]


# The varied scene's size limits are the classic scene's (synthetic.SIZE_LIMITS); the pinned
# varied clips of tests/model_core/data/test_data_variety.py hold both to what they were.
VARIED = LookRanges((0.06, 0.18), (0.4, 0.6), (0.16, 0.3), (0.05, 0.22))
FINE = LookRanges((0.04, 0.18), (0.3, 0.65), (0.08, 0.3), (0.035, 0.22))
LOOK_RANGES = {"varied": VARIED, "fine": FINE}  # scene name -> ranges (classic has no look)


@dataclass(frozen=True, eq=False)
class VariedLook:
    """What the varied scene changes in one clip.

    Attributes:
        kind: One of ``KINDS``: ``"flat"`` replaces the classic background's field by its mean
            colour; ``"tiled"``, ``"noise"`` and ``"tiled_noise"`` lay detail over the field.
        tile: Tile side of the checkerboard, fraction of the frame side.
        tile_step: Brightness step between tiles, 0-255 units (signed).
        noise_cells: Cells per side of the value noise.
        noise_grid: ``(noise_cells, noise_cells)`` value-noise samples in [-1, 1].
        noise_amplitude: Amplitude of the value noise, 0-255 units.
        grain: Static per-pixel grain, 0-255 units.
        pan: ``(vx, vy)`` pan of the background, frame sides per second.
        shape: The actor's shape.
        radius: The actor's circumradius at rest, fraction of the frame side.
        colour_distance: How far the actor's colour must be from the background's palette.
        marker_offset: The marker's distance from the centre, in circumradii.
        marker_radius: The marker's radius, in circumradii.
        noise_std: Sensor noise, 0-255 units.
    """

    kind: str
    tile: float
    tile_step: float
    noise_cells: int
    noise_grid: np.ndarray
    noise_amplitude: float
    grain: float
    pan: tuple[float, float]
    shape: str
    radius: float
    colour_distance: float
    marker_offset: float
    marker_radius: float
    noise_std: float

    def colour(self, rng: np.random.Generator, bg: BackgroundParams) -> tuple[int, int, int]:
        """The actor's fill, drawn against the background's palette."""
        return pick_colour(rng, bg.palette(), self.colour_distance, (0.0, 1.0), (0.15, 1.0))


def draw_varied_look(rng: np.random.Generator, ranges: LookRanges = VARIED) -> VariedLook:
    """Draw one clip's varied look; the generator always consumes the same amount, whatever the
    ranges."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    tile = float(rng.uniform(0.04, 0.2))
    tile_step = float(rng.uniform(15.0, 60.0) * rng.choice((-1.0, 1.0)))
    cells = int(rng.integers(4, 19))
    grid = rng.uniform(-1.0, 1.0, (18, 18))[:cells, :cells]
    amplitude = float(rng.uniform(12.0, 45.0))
    grain = float(rng.uniform(0.0, 10.0))
    moving = rng.random() < 1 / 3
    heading = rng.uniform(0.0, 2 * np.pi)
    speed = float(rng.uniform(0.0, PAN_SPEED)) if moving else 0.0
    names = SHAPE_NAMES + EXTRA_SHAPE_NAMES
    shape = names[int(rng.integers(len(names)))]
    return VariedLook(
        kind=kind,
        tile=tile,
        tile_step=tile_step,
        noise_cells=cells,
        noise_grid=grid,
        noise_amplitude=amplitude,
        grain=grain,
        pan=(speed * float(np.cos(heading)), speed * float(np.sin(heading))),
        shape=shape,
        radius=float(rng.uniform(*ranges.radius)),
        colour_distance=float(rng.uniform(45.0, 130.0)),
        marker_offset=float(rng.uniform(*ranges.marker_offset)),
        marker_radius=float(rng.uniform(*ranges.marker_radius)),
        noise_std=float(rng.uniform(*VARIED_NOISE)),
    )


def _smooth(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a square grid to ``(size, size)``."""
    cells = grid.shape[0]
    pos = (np.arange(size) + 0.5) / size * (cells - 1)
    lo = np.minimum(np.floor(pos).astype(int), cells - 2)
    frac = pos - lo
    w = np.zeros((size, cells))
    w[np.arange(size), lo] = 1.0 - frac
    w[np.arange(size), lo + 1] = frac
    smooth: np.ndarray = w @ grid @ w.T
    return smooth


def render_varied_plane(
    look: VariedLook, classic: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Lay the varied detail over a classic background.

    Args:
        look: The drawn look.
        classic: ``(S, S, 3)`` uint8 classic background (of the side the plane needs).
        rng: Generator for the grain (its consumption depends on the size).

    Returns:
        ``(S, S, 3)`` float32 background before the actor, flicker and noise.
    """
    size = classic.shape[0]
    plane = classic.astype(np.float32)
    if look.kind == "flat":
        plane[:] = plane.mean(axis=(0, 1))  # one colour, as a wall or the sky
    detail = np.zeros((size, size), np.float32)
    if look.kind in ("tiled", "tiled_noise"):
        tile = max(2, round(look.tile * size))
        idx = np.arange(size) // tile
        parity = ((idx[:, None] + idx[None, :]) % 2).astype(np.float32)  # (S, S)
        detail += (parity - 0.5) * np.float32(look.tile_step)
    if look.kind in ("noise", "tiled_noise"):
        detail += _smooth(look.noise_grid, size).astype(np.float32) * np.float32(
            look.noise_amplitude
        )
        detail += rng.normal(0.0, look.grain, (size, size)).astype(np.float32)
    plane += detail[..., None]
    np.clip(plane, 0.0, 255.0, out=plane)
    return plane


def pan_offsets(look: VariedLook, t: np.ndarray, size: int, pad: int) -> np.ndarray:
    """``(N, 2)`` integer ``(x, y)`` crop offsets of a panning background at times ``t``."""
    vx, vy = look.pan
    x = np.rint(pad + vx * size * t).astype(int) % (2 * pad + 1)
    y = np.rint(pad + vy * size * t).astype(int) % (2 * pad + 1)
    return np.stack([x, y], axis=1)
