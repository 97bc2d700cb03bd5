"""Static parts of a synthetic scene: textured backgrounds, colours and distractor objects.

Everything here is drawn in two steps: the random parameters first, from a generator whose
consumption does not depend on the resolution, then the pixels. So one seed gives the same scene at
112 and at 224 pixels, only sharper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_core.data.shapes import SHAPE_NAMES, draw_shapes, get_shape

__all__ = [
    "DISTRACTOR_RADIUS",
    "DRIFT_SPEED",
    "MARGIN",
    "TEXTURES",
    "BackgroundParams",
    "Distractor",
    "add_sensor_effects",
    "distractor_positions",
    "draw_background_params",
    "draw_distractors",
    "draw_moving_distractors",
    "hsv_to_rgb",
    "marker_colour_for",
    "pick_colour",
    "render_background",
]

TEXTURES: tuple[str, ...] = ("flat", "stripes", "checker", "waves")
DISTRACTOR_RADIUS = (0.03, 0.065)  # fraction of the frame side
DRIFT_SPEED = (0.01, 0.05)  # frame sides per second; actions move at least 7x faster
MARGIN = 0.02  # kept between any object and the frame's border, fraction of the frame side
_GRID = 6  # largest size of the coarse colour grid behind the smooth background field
# std of (a + b - 255) for two independent uniform bytes a and b: sqrt(2 * (256**2 - 1) / 12)
_TRIANGULAR_STD = 104.51


@dataclass(frozen=True, eq=False)
class BackgroundParams:
    """Resolution-independent description of a static background.

    Attributes:
        base: RGB mean colour, 0-255.
        grid: ``(g, g, 3)`` offsets from ``base`` on a coarse grid, interpolated smoothly.
        texture: One of ``TEXTURES``.
        frequency: Texture cycles per frame side.
        orientation: Texture orientation, radians.
        phase: Texture phase, radians.
        amplitude: Texture amplitude, 0-255 units.
        grain: Amplitude of the static per-pixel grain, 0-255 units.
    """

    base: np.ndarray
    grid: np.ndarray
    texture: str
    frequency: float
    orientation: float
    phase: float
    amplitude: float
    grain: float

    def palette(self) -> np.ndarray:
        """The coarse colours the background passes through, ``(g * g, 3)``."""
        return (self.base + self.grid).reshape(-1, 3)


@dataclass(frozen=True)
class Distractor:
    """An object that is in the scene but does none of the actions.

    Attributes:
        shape: A name from ``SHAPE_NAMES``.
        colour: RGB, 0-255.
        radius: Circumradius, fraction of the frame side.
        x: Start centre x, fraction of the frame side.
        y: Start centre y, fraction of the frame side.
        angle: Orientation, degrees clockwise.
        vx: Drift along x, frame sides per second (0 for a static distractor).
        vy: Drift along y, frame sides per second.
    """

    shape: str
    colour: tuple[int, int, int]
    radius: float
    x: float
    y: float
    angle: float
    vx: float
    vy: float

    @property
    def static(self) -> bool:
        """Whether the distractor never moves (it is then baked into the background)."""
        return self.vx == 0.0 and self.vy == 0.0


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Convert HSV in [0, 1] to RGB in 0-255.

    Args:
        h: Hue, any shape.
        s: Saturation, same shape.
        v: Value, same shape.

    Returns:
        ``(..., 3)`` RGB.
    """
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0  # (..., 3)
    chroma = (v * s)[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return 255.0 * (v[..., None] - chroma)


def pick_colour(
    rng: np.random.Generator,
    avoid: np.ndarray,
    min_distance: float,
    saturation: tuple[float, float],
    value: tuple[float, float],
    candidates: int = 16,
) -> tuple[int, int, int]:
    """Draw a colour that stands out against the given colours.

    A fixed number of candidates is always drawn, so the generator's consumption is the same
    whichever candidate wins.

    Args:
        rng: Random generator.
        avoid: ``(K, 3)`` colours to keep away from.
        min_distance: Euclidean RGB distance wanted from every colour in ``avoid``.
        saturation: Range of HSV saturation.
        value: Range of HSV value.
        candidates: How many candidates to draw.

    Returns:
        The first candidate far enough from ``avoid``, else the farthest one.
    """
    rgb = hsv_to_rgb(
        rng.random(candidates),
        rng.uniform(*saturation, candidates),
        rng.uniform(*value, candidates),
    )
    gap = np.linalg.norm(rgb[:, None, :] - avoid[None, :, :], axis=-1).min(axis=1)
    ok = np.flatnonzero(gap >= min_distance)
    best = ok[0] if len(ok) else int(np.argmax(gap))
    r, g, b = (int(c) for c in np.rint(rgb[best]))
    return r, g, b


def marker_colour_for(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """A near-black or near-white marker colour that contrasts with a fill colour."""
    c = np.asarray(colour, dtype=np.float64)
    luma = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    m = c * 0.15 if luma > 110 else c + (255.0 - c) * 0.85
    r, g, b = (int(v) for v in np.rint(m))
    return r, g, b


def draw_background_params(rng: np.random.Generator) -> BackgroundParams:
    """Draw a muted, textured background.

    Args:
        rng: Random generator; it always consumes the same amount.

    Returns:
        The background description.
    """
    grey = rng.uniform(60.0, 170.0)
    base = grey + rng.uniform(-25.0, 25.0, 3)
    g = int(rng.integers(2, _GRID + 1))
    # Mostly brightness changes with a little colour, as in a real room.
    lum = rng.uniform(-35.0, 35.0, (_GRID, _GRID, 1))
    tint = rng.uniform(-12.0, 12.0, (_GRID, _GRID, 3))
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    return BackgroundParams(
        base=base,
        grid=(lum + tint)[:g, :g],
        texture=texture,
        frequency=float(rng.uniform(3.0, 9.0)),
        orientation=float(rng.uniform(0.0, np.pi)),
        phase=float(rng.uniform(0.0, 2 * np.pi)),
        amplitude=float(rng.uniform(6.0, 20.0)),
        grain=float(rng.uniform(2.0, 7.0)),
    )


def _interp_matrix(size: int, cells: int) -> np.ndarray:
    """``(size, cells)`` weights interpolating ``cells`` samples linearly over ``size`` pixels."""
    pos = (np.arange(size) + 0.5) / size * (cells - 1)
    lo = np.minimum(np.floor(pos).astype(int), cells - 2)
    frac = pos - lo
    w = np.zeros((size, cells))
    w[np.arange(size), lo] = 1.0 - frac
    w[np.arange(size), lo + 1] = frac
    return w


def render_background(
    params: BackgroundParams,
    size: int,
    grain_rng: np.random.Generator,
    distractors: tuple[Distractor, ...] = (),
) -> np.ndarray:
    """Render a background and the static distractors on it.

    Args:
        params: The background description.
        size: Frame side, pixels.
        grain_rng: Generator for the per-pixel grain (its consumption depends on ``size``).
        distractors: Objects to bake in; the drifting ones are skipped.

    Returns:
        ``(size, size, 3)`` uint8 image.
    """
    f32 = np.float32
    w = _interp_matrix(size, params.grid.shape[0]).astype(f32)
    field = w @ params.grid.astype(f32).transpose(2, 0, 1) @ w.T  # (3, H, W)
    coords = (np.arange(size, dtype=f32) + f32(0.5)) / f32(size)
    cos_o, sin_o = f32(np.cos(params.orientation)), f32(np.sin(params.orientation))
    u = coords[None, :] * cos_o + coords[:, None] * sin_o  # (H, W)
    v = coords[:, None] * cos_o - coords[None, :] * sin_o  # (H, W)
    arg = f32(2 * np.pi * params.frequency)
    phase = f32(params.phase)
    if params.texture == "stripes":
        tex = np.sin(arg * u + phase)
    elif params.texture == "checker":
        tex = np.tanh(f32(3.0) * np.sin(arg * u + phase) * np.sin(arg * v))
    elif params.texture == "waves":
        tex = np.sin(arg * u + f32(1.5) * np.sin(f32(0.5) * arg * v) + phase)
    else:
        tex = np.zeros((size, size), f32)
    raw = np.frombuffer(grain_rng.bytes(size * size), np.uint8).reshape(size, size)
    grain = (raw.astype(f32) * f32(1 / 127.5) - f32(1.0)) * f32(params.grain)
    detail = tex * f32(params.amplitude) + grain  # (H, W), the same in every channel
    image = field.transpose(1, 2, 0) + detail[..., None] + params.base.astype(f32)  # (H, W, 3)
    canvas = image[None]  # (1, H, W, 3)
    for d in distractors:
        if d.static:
            _draw_distractor(canvas, d, size, np.zeros(1))
    return np.clip(np.rint(canvas[0]), 0, 255).astype(np.uint8)


def draw_distractors(
    rng: np.random.Generator, count: tuple[int, int], avoid: np.ndarray
) -> tuple[Distractor, ...]:
    """Draw distractor objects: small shapes, each static or drifting slowly with even odds.

    Args:
        rng: Random generator.
        count: Inclusive range of how many to draw.
        avoid: ``(K, 3)`` colours they should stand out from (the background's).

    Returns:
        The distractors.
    """
    n = int(rng.integers(count[0], count[1] + 1))
    out = []
    for _ in range(n):
        shape = SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))]
        colour = pick_colour(rng, avoid, 70.0, (0.2, 1.0), (0.2, 1.0))
        radius = float(rng.uniform(*DISTRACTOR_RADIUS))
        lo, hi = radius + MARGIN, 1.0 - radius - MARGIN
        x, y = (float(p) for p in rng.uniform(lo, hi, 2))
        angle = float(rng.uniform(0.0, 360.0))
        heading = rng.uniform(0.0, 2 * np.pi)
        speed = rng.uniform(*DRIFT_SPEED) if rng.random() < 0.5 else 0.0
        vx, vy = float(speed * np.cos(heading)), float(speed * np.sin(heading))
        out.append(Distractor(shape, colour, radius, x, y, angle, vx, vy))
    return tuple(out)


def distractor_positions(d: Distractor, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of a distractor at times ``t``, bouncing off the frame's borders.

    Args:
        d: The distractor.
        t: Times in seconds.

    Returns:
        ``(x, y)`` arrays shaped like ``t``, fractions of the frame side.
    """
    lo, hi = d.radius + MARGIN, 1.0 - d.radius - MARGIN
    span = hi - lo
    # A triangle wave: the position walks forward and reflects at both ends of [lo, hi].
    qx = np.mod(d.x - lo + d.vx * t, 2 * span)
    qy = np.mod(d.y - lo + d.vy * t, 2 * span)
    return lo + span - np.abs(qx - span), lo + span - np.abs(qy - span)


def _draw_distractor(canvas: np.ndarray, d: Distractor, size: int, t: np.ndarray) -> None:
    """Draw one distractor on a chunk of frames at times ``t`` (seconds)."""
    x, y = distractor_positions(d, t)
    n = len(t)
    draw_shapes(
        canvas,
        get_shape(d.shape),
        np.asarray(d.colour, dtype=np.float32),
        x * size,
        y * size,
        np.full(n, d.radius * size),
        np.full(n, np.deg2rad(d.angle)),
        np.ones(n),
    )


def draw_moving_distractors(
    canvas: np.ndarray, distractors: tuple[Distractor, ...], size: int, t: np.ndarray
) -> None:
    """Draw the drifting distractors on a chunk of frames, in place.

    Args:
        canvas: ``(N, H, W, 3)`` float32 frames.
        distractors: All distractors of the scene; the static ones are skipped.
        size: Frame side, pixels.
        t: ``(N,)`` time of each frame, seconds.
    """
    for d in distractors:
        if not d.static:
            _draw_distractor(canvas, d, size, t)


def add_sensor_effects(
    canvas: np.ndarray,
    t: np.ndarray,
    noise_std: float,
    flicker: tuple[float, float, float],
    rng: np.random.Generator,
) -> None:
    """Apply brightness flicker and per-pixel sensor noise to a chunk of frames, in place.

    Args:
        canvas: ``(N, H, W, 3)`` float32 frames.
        t: ``(N,)`` time of each frame, seconds.
        noise_std: Standard deviation of the noise, 0-255 units.
        flicker: ``(amplitude, hertz, phase)`` of the slow brightness oscillation; a random
            per-frame jitter of a third of the amplitude comes on top.
        rng: Generator for the per-frame jitter and the per-pixel noise.
    """
    amplitude, hertz, phase = flicker
    jitter = rng.uniform(-amplitude / 3, amplitude / 3, len(t))
    gain = 1.0 + amplitude * np.sin(2 * np.pi * hertz * t + phase) + jitter
    canvas *= gain.astype(np.float32)[:, None, None, None]
    # Noise from raw bytes: a sum of two uniform bytes is near-Gaussian and several times cheaper
    # to draw than normal variates, which would otherwise dominate the cost of a clip.
    raw = np.frombuffer(rng.bytes(2 * canvas.size), np.uint8).reshape(2, *canvas.shape)
    noise = np.add(raw[0], raw[1], dtype=np.float32)  # 0..510, mean 255
    scale = np.float32(noise_std / _TRIANGULAR_STD)
    noise *= scale
    canvas += noise
    canvas -= np.float32(255.0) * scale
