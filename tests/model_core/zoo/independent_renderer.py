"""A second renderer of the motion classes, written apart from ``model_core.data``'s generator.

It exists to check that the demo bundles learned the actions and not the generator: it shares no
drawing code, no constants and no conventions with ``model_core/data``. Only the class names and
their meaning come from there (read from its docstrings, not its code):

- ``stay_still``: the object is present and does not change.
- ``move_left`` / ``right`` / ``up`` / ``down``: the object travels that way on screen.
- ``rotate_clockwise`` / ``anticlockwise``: the object turns in place, as seen on screen; a mark
  on it shows its orientation.
- ``grow`` / ``shrink``: the object gets bigger / smaller in place.
- ``appear`` / ``disappear``: the object fades in from absent / out to absent, in place.

Its own conventions: positions are in a centred frame, ``(0, 0)`` the middle of the picture,
``+1`` half a side to the right or **up** (y grows upwards); angles are counter-clockwise in that
frame, so a clockwise turn on screen is a falling angle; speeds are per frame (no frame rate
enters the motion). Objects are drawn with Pillow on a 4x supersampled mask and composited with
numpy; the orientation mark is a small square notch in a black or white that contrasts with the
fill. Backgrounds are flat, tiled (a checkerboard of random tile size), textured (smooth value
noise plus grain), tiled and textured, or moving (a larger textured or tiled plane panned
slowly); per-frame Gaussian sensor noise comes on top. Frames are 96 to 176 px square and each
clip is encoded as H.264 MP4 with PyAV at a random quality, then read back through
``model_core.data.video_io.read_video`` and ``model_core.preprocess.preprocess_frames``, the
path the CLI and the worker use.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw

from model_core.data import CLASS_NAMES

__all__ = [
    "BACKGROUNDS",
    "FRAMES",
    "SHAPES",
    "IndependentClip",
    "decode_mp4",
    "encode_mp4",
    "render_clip",
]

FRAMES = 8
SHAPES = ("box", "disc", "wedge", "kite", "bar", "octagon")
BACKGROUNDS = ("flat", "tiled", "textured", "tiled_textured", "moving")
_SIDES = (96, 112, 128, 144, 160, 176)
_SUPER = 4  # supersampling of the object masks
_SALT = 0x1D3_9E2D


@dataclass(frozen=True, eq=False)
class IndependentClip:
    """One rendered clip and what was drawn.

    Attributes:
        frames: ``(T, S, S, 3)`` uint8 RGB frames before encoding.
        label: Class index into ``CLASS_NAMES``.
        seed: The seed.
        shape: One of ``SHAPES``.
        background: One of ``BACKGROUNDS``.
        speed: Per-frame rate of the action in its own unit (half-sides, degrees, scale factor or
            opacity per frame; 0 for ``stay_still``).
        crf: The H.264 quality the clip is encoded at.
        fps: The frame rate written into the container.
    """

    frames: np.ndarray
    label: int
    seed: int
    shape: str
    background: str
    speed: float
    crf: int
    fps: int

    @property
    def name(self) -> str:
        """The class name."""
        return CLASS_NAMES[self.label]


# --- outlines, in the object's own frame (unit half-size, y up, counter-clockwise angles) ---------


def _outline(shape: str) -> list[tuple[float, float]] | None:
    """Polygon corners of a unit-sized shape, or ``None`` for the disc."""
    if shape == "box":
        return [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    if shape == "bar":
        return [(1, 0.45), (-1, 0.45), (-1, -0.45), (1, -0.45)]
    if shape == "wedge":
        return [(1, 0), (-0.8, 0.75), (-0.8, -0.75)]
    if shape == "kite":
        return [(1, 0), (-0.1, 0.6), (-0.7, 0), (-0.1, -0.6)]
    if shape == "octagon":
        return [(math.cos(k * math.pi / 4 + math.pi / 8), math.sin(k * math.pi / 4 + math.pi / 8))
                for k in range(8)]  # fmt: skip
    return None


def _mask(
    side: int,
    shape: str,
    centre: tuple[float, float],
    half: float,
    angle_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the object and of its notch, each ``(side, side)`` float32 in [0, 1].

    ``centre`` and ``half`` are in half-sides of the centred frame, y up.
    """
    big = side * _SUPER
    scale = big / 2.0  # pixels per half-side, supersampled

    def to_px(px: float, py: float) -> tuple[float, float]:
        return (centre[0] + px) * scale + big / 2.0, big / 2.0 - (centre[1] + py) * scale

    rad = math.radians(angle_deg)
    c, s = math.cos(rad), math.sin(rad)

    def place(points: list[tuple[float, float]], size: float) -> list[tuple[float, float]]:
        return [to_px(size * (x * c - y * s), size * (x * s + y * c)) for x, y in points]

    body = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(body)
    corners = _outline(shape)
    if corners is None:
        x0, y0 = to_px(-half, half)
        x1, y1 = to_px(half, -half)
        draw.ellipse((x0, y0, x1, y1), fill=255)
    else:
        draw.polygon(place(corners, half), fill=255)
    notch = Image.new("L", (big, big), 0)
    # A square notch towards the object's heading (its local +x), inside the outline.
    n = 0.16
    square = [(0.55 + n, n), (0.55 - n, n), (0.55 - n, -n), (0.55 + n, -n)]
    ImageDraw.Draw(notch).polygon(place(square, half), fill=255)
    out = []
    for img in (body, notch):
        small = img.resize((side, side), Image.Resampling.BOX)
        out.append(np.asarray(small, np.float32) / 255.0)
    return out[0], out[1] * out[0]


# --- backgrounds ----------------------------------------------------------------------------------


def _value_noise(rng: np.random.Generator, side: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a random ``cells x cells`` grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    img = Image.fromarray(grid, "L").resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(img, np.float32) / 127.5 - 1.0


def _plane(rng: np.random.Generator, kind: str, side: int, base: np.ndarray) -> np.ndarray:
    """A static ``(side, side, 3)`` float32 background of one kind around a base colour."""
    plane = np.broadcast_to(base, (side, side, 3)).astype(np.float32).copy()
    if kind in ("tiled", "tiled_textured"):
        tile = int(rng.integers(5, 22))
        ys, xs = np.mgrid[0:side, 0:side]
        parity = ((ys // tile + xs // tile) % 2).astype(np.float32)
        step = rng.uniform(18, 60) * np.sign(rng.uniform(-1, 1))
        tint = rng.uniform(-12, 12, 3).astype(np.float32)
        plane += (parity[..., None] - 0.5) * (step + tint)
    if kind in ("textured", "tiled_textured"):
        cells = int(rng.integers(4, 18))
        amp = rng.uniform(15, 45)
        plane += _value_noise(rng, side, cells)[..., None] * np.float32(amp)
        grain = rng.normal(0, rng.uniform(2, 9), (side, side)).astype(np.float32)
        plane += grain[..., None]
    return plane


def _backgrounds(
    rng: np.random.Generator, kind: str, side: int, base: np.ndarray, frames: int
) -> np.ndarray:
    """``(T, side, side, 3)`` float32 backgrounds; all alike unless the kind is ``moving``."""
    if kind != "moving":
        return np.broadcast_to(_plane(rng, kind, side, base), (frames, side, side, 3))
    inner = ("tiled", "textured", "tiled_textured")[int(rng.integers(3))]
    pad = side // 4
    plane = _plane(rng, inner, side + 2 * pad, base)
    # A slow pan of the whole plane, at most 1.2 px a frame in each direction.
    vx, vy = rng.uniform(-1.2, 1.2, 2)
    out = np.empty((frames, side, side, 3), np.float32)
    for t in range(frames):
        ox = int(np.rint(pad + vx * t)) % (2 * pad)
        oy = int(np.rint(pad + vy * t)) % (2 * pad)
        out[t] = plane[oy : oy + side, ox : ox + side]
    return out


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.3, 0.59, 0.11]))


def _object_colour(rng: np.random.Generator, background_luma: float) -> np.ndarray:
    """A colour whose luma differs from the background's by 55 to 150 levels, either way
    when there is room."""
    gap = rng.uniform(55, 150)
    up_ok, down_ok = background_luma + gap <= 250, background_luma - gap >= 5
    brighter = bool(rng.random() < 0.5) if up_ok and down_ok else up_ok or not down_ok
    target = float(np.clip(background_luma + gap if brighter else background_luma - gap, 0, 255))
    hue_dir = rng.normal(0, 1, 3)
    hue_dir -= hue_dir @ np.array([0.3, 0.59, 0.11])  # zero luma change
    colour = target + hue_dir * rng.uniform(0, 40)
    return np.clip(colour, 0, 255).astype(np.float32)


# --- the actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pose:
    x: np.ndarray  # (T,) centre, half-sides, right
    y: np.ndarray  # (T,) centre, half-sides, up
    half: np.ndarray  # (T,) half-size, half-sides
    angle: np.ndarray  # (T,) degrees, counter-clockwise
    alpha: np.ndarray  # (T,) opacity


def _pose(rng: np.random.Generator, name: str, frames: int) -> tuple[_Pose, float]:
    """The object's pose in every frame for one action, kept inside the picture."""
    k = np.arange(frames, dtype=np.float64)
    half = float(rng.uniform(0.15, 0.3))
    angle0 = float(rng.uniform(0, 360))
    ones = np.ones(frames)
    speed = 0.0
    x0, y0 = rng.uniform(-1, 1, 2) * (0.9 - half)
    x, y, h, a, alpha = x0 * ones, y0 * ones, half * ones, angle0 * ones, ones.copy()
    if name.startswith("move_"):
        speed = float(rng.uniform(0.06, 0.13))  # half-sides per frame
        travel = speed * (frames - 1)
        direction = {"left": (-1, 0), "right": (1, 0), "up": (0, 1), "down": (0, -1)}[name[5:]]
        limit = 0.92 - half
        travel = min(travel, 2 * limit)
        speed = travel / (frames - 1)
        # Start where the whole path fits.
        along = rng.uniform(-limit, limit - travel)
        across = rng.uniform(-limit, limit)
        dx, dy = direction
        path = along + speed * k  # (T,) distance along the direction of travel
        x = dx * path if dx else across * ones
        y = dy * path if dy else across * ones
    elif name.startswith("rotate_"):
        speed = float(rng.uniform(10, 28))  # degrees per frame
        a = angle0 + (speed if name == "rotate_anticlockwise" else -speed) * k
    elif name in ("grow", "shrink"):
        speed = float(rng.uniform(1.07, 1.14))  # scale factor per frame
        small = float(rng.uniform(0.09, 0.14))
        big = small * speed ** (frames - 1)
        limit = 0.92 - big
        x, y = rng.uniform(-limit, limit, 2)[:, None] * ones
        h = small * speed**k if name == "grow" else big * speed**-k
    elif name in ("appear", "disappear"):
        ramp = int(rng.integers(2, 5))  # frames from absent to present
        start = int(rng.integers(0, frames - ramp))
        level = np.clip((k - start) / ramp, 0.0, 1.0)
        alpha = level if name == "appear" else 1.0 - level
        speed = 1.0 / ramp
    return _Pose(x, y, h, a, alpha), speed


def render_clip(seed: int, label: int | None = None, frames: int = FRAMES) -> IndependentClip:
    """Render one clip; a pure function of its arguments.

    Args:
        seed: Non-negative seed.
        label: Class index; ``None`` takes ``seed % len(CLASS_NAMES)``.
        frames: Frames in the clip.

    Returns:
        The clip's raw frames and what was drawn.
    """
    label = seed % len(CLASS_NAMES) if label is None else label
    name = CLASS_NAMES[label]
    rng = np.random.default_rng([_SALT, seed, label])
    side = int(rng.choice(_SIDES))
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    base = rng.uniform(35, 215) + rng.uniform(-20, 20, 3)
    canvas = _backgrounds(rng, kind, side, base.astype(np.float32), frames).copy()
    fill = _object_colour(rng, _luma(base))
    notch_colour = np.float32(20.0 if _luma(fill) > 128 else 235.0) * np.ones(3, np.float32)
    pose, speed = _pose(rng, name, frames)
    for t in range(frames):
        body, notch = _mask(
            side, shape, (float(pose.x[t]), float(pose.y[t])), float(pose.half[t]),
            float(pose.angle[t]),
        )  # fmt: skip
        paint = fill + (notch_colour - fill) * notch[..., None]
        cover = (body * np.float32(pose.alpha[t]))[..., None]
        canvas[t] += (paint - canvas[t]) * cover
    noise = float(rng.uniform(0, 8))
    canvas += rng.normal(0, noise, canvas.shape).astype(np.float32)
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    crf = int(rng.integers(16, 31))
    fps = int(rng.choice((8, 10, 12, 15, 25, 30)))
    return IndependentClip(out, label, seed, shape, kind, speed, crf, fps)


def encode_mp4(clip: IndependentClip) -> bytes:
    """Encode a clip as H.264 in MP4 with PyAV, at the clip's quality and frame rate."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(clip.fps))
        _, height, width, _ = clip.frames.shape
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(clip.crf), "preset": "fast"}
        for image in clip.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_mp4(data: bytes) -> np.ndarray:
    """Read an MP4 back through the project's decoder: ``(T, H, W, 3)`` uint8."""
    from model_core.data.video_io import read_video

    return read_video(io.BytesIO(data))
