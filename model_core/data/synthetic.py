"""A procedural action-recognition dataset: one actor shape doing one action over a static scene.

A clip shows an actor (a shape with a contrasting marker disc, so that its orientation is visible)
doing one of ``CLASS_NAMES`` over a textured background, with distractor objects that are static or
drift slowly, per-pixel sensor noise and a slight brightness flicker. Everything is drawn from the
seed, so a seed names a clip: same seed, same bytes.

Speeds are physical: positions in frame sides per second, rotations in degrees per second, sizes as
a factor per second and fades in seconds. The clip's ``fps`` only sets how densely that motion is
sampled, so the same action at 30 fps moves a third as far per frame as at 10 fps. The random draws
do not depend on the spec, so one seed gives the same actor, scene and speed at any frame count,
frame rate or resolution (only the caps that keep the actor in the frame depend on the duration).

Each order-dependent pair is drawn from one distribution and played forwards or backwards, so that
only the order of the frames tells ``move_left`` from ``move_right``, ``grow`` from ``shrink`` and
``appear`` from ``disappear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model_core.data.scene import (
    MARGIN,
    BackgroundParams,
    Distractor,
    add_sensor_effects,
    draw_background_params,
    draw_distractors,
    draw_moving_distractors,
    marker_colour_for,
    pick_colour,
    render_background,
)
from model_core.data.shapes import SHAPE_NAMES, draw_shapes, get_shape
from model_core.data.variety import (
    LOOK_RANGES,
    SCENES,
    VariedLook,
    draw_varied_look,
    pan_offsets,
    render_varied_plane,
)

__all__ = [
    "CLASS_NAMES",
    "HELDOUT_SEEDS",
    "IDLE_LABEL",
    "NUM_CLASSES",
    "REVERSED_PAIRS",
    "TRAIN_SEEDS",
    "Action",
    "Actor",
    "ActorState",
    "ActorTrack",
    "Clip",
    "ClipSpec",
    "Scene",
    "Segment",
    "Stream",
    "generate_batch",
    "generate_clip",
    "generate_stream",
    "label_for_seed",
]

CLASS_NAMES: tuple[str, ...] = (
    "stay_still",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_clockwise",
    "rotate_anticlockwise",
    "grow",
    "shrink",
    "appear",
    "disappear",
)
NUM_CLASSES = len(CLASS_NAMES)
IDLE_LABEL = CLASS_NAMES.index("stay_still")
# Pairs that only the order of the frames tells apart: each is the other played backwards.
REVERSED_PAIRS: tuple[tuple[str, str], ...] = (
    ("move_left", "move_right"),
    ("move_up", "move_down"),
    ("rotate_clockwise", "rotate_anticlockwise"),
    ("grow", "shrink"),
    ("appear", "disappear"),
)

# Disjoint seed ranges. Both start at a multiple of NUM_CLASSES, so any prefix of either whose
# length is a multiple of NUM_CLASSES holds every class equally often.
TRAIN_SEEDS = range(0, NUM_CLASSES * 100_000_000)
HELDOUT_SEEDS = range(NUM_CLASSES * 100_000_000, NUM_CLASSES * 110_000_000)

ACTOR_RADIUS = (0.08, 0.14)  # circumradius of a new actor, fraction of the frame side
MOVE_SPEED = (0.35, 0.6)  # frame sides per second
MOVE_JITTER = 8.0  # degrees either side of the nominal heading
ROTATE_SPEED = (120.0, 240.0)  # degrees per second
GROW_RATE = (1.8, 2.6)  # size factor per second
SIZE_LIMITS = (0.05, 0.22)  # circumradius range while growing or shrinking
FADE_TIME = (0.2, 0.5)  # seconds to appear or disappear
NOISE_STD = (2.0, 6.0)  # per-pixel sensor noise, 0-255 units
# In a stream the actor starts an action from wherever it is; an action that would have less room
# than this is not chosen there (unless its nominal extent is smaller anyway).
MIN_STREAM_MOVE = 0.2  # frame sides
MIN_STREAM_SCALE = 1.4  # size factor

_CLIP_SALT = 0x5EED_C11B
_STREAM_SALT = 0x5EED_57EA
_CHUNK = 32  # frames rendered per float32 buffer, bounding memory on long streams

# Clips of each key are made as the value's plan played backwards (see generate_clip).
_FORWARD = {
    "move_left": "move_right",
    "move_up": "move_down",
    "rotate_anticlockwise": "rotate_clockwise",
    "shrink": "grow",
    "disappear": "appear",
}
_ACTIONS = tuple(i for i in range(NUM_CLASSES) if i != IDLE_LABEL)

# Nominal heading of each move on screen, degrees, y pointing down.
_HEADING = {"move_right": 0.0, "move_down": 90.0, "move_left": 180.0, "move_up": 270.0}


@dataclass(frozen=True)
class ClipSpec:
    """What a generated clip looks like.

    Attributes:
        frames: Frames per clip, at least 2.
        size: Frame side in pixels (frames are square), at least 32.
        fps: Frame rate; it sets how far the actor moves between two frames.
        distractors: Inclusive range of the number of distractor objects.
        noise_std: Range of the per-pixel sensor noise's standard deviation, 0-255 units.
        flicker: Largest relative amplitude of the global brightness flicker.
        scene: ``"classic"`` (what every shipped bundle was trained on; a seed's clip never
            changes), ``"varied"`` (model_core.data.variety: hard-edged tiled and strongly
            textured backgrounds that may pan, thin and small actors of low contrast, stronger
            noise; ``noise_std`` is then unused) or ``"fine"`` (the varied scene with smaller
            actors and markers, ``variety.FINE``).
    """

    frames: int = 8
    size: int = 112
    fps: float = 10.0
    distractors: tuple[int, int] = (0, 3)
    noise_std: tuple[float, float] = NOISE_STD
    flicker: float = 0.04
    scene: str = "classic"

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be at least 2, got {self.frames}")
        if self.size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {self.size}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors must be a range (min, max) >= 0, got {self.distractors}")
        if not 0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ValueError(f"noise_std must be a range (min, max) >= 0, got {self.noise_std}")
        if not 0 <= self.flicker < 0.5:
            raise ValueError(f"flicker must be in [0, 0.5), got {self.flicker}")
        if self.scene not in SCENES:
            raise ValueError(f"scene must be one of {SCENES}, got {self.scene!r}")

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return (self.frames - 1) / self.fps


@dataclass(frozen=True)
class Actor:
    """How the actor looks.

    Attributes:
        shape: A name from ``SHAPE_NAMES``.
        colour: RGB fill, 0-255.
        marker_colour: RGB of the marker disc that shows the actor's orientation.
        marker_offset: The marker's distance from the centre, in circumradii.
        marker_radius: The marker's radius, in circumradii.
    """

    shape: str
    colour: tuple[int, int, int]
    marker_colour: tuple[int, int, int]
    marker_offset: float = 0.5
    marker_radius: float = 0.24


@dataclass(frozen=True)
class ActorState:
    """The actor at one instant.

    Attributes:
        x: Centre x, fraction of the frame side (0 is the left border).
        y: Centre y, fraction of the frame side (0 is the top border).
        radius: Circumradius, fraction of the frame side.
        angle: Orientation in degrees, growing clockwise on screen.
        opacity: 0 (absent) to 1 (fully present).
    """

    x: float
    y: float
    radius: float
    angle: float
    opacity: float = 1.0


@dataclass(frozen=True, eq=False)
class ActorTrack:
    """The actor's state in every frame; each attribute is a ``(N,)`` float64 array.

    Attributes:
        x: Centre x, fraction of the frame side.
        y: Centre y, fraction of the frame side.
        radius: Circumradius, fraction of the frame side.
        angle: Orientation, degrees clockwise.
        opacity: 0 to 1.
    """

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    opacity: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def hold(cls, state: ActorState, n: int) -> ActorTrack:
        """A track of ``n`` frames in which nothing changes."""
        return cls(*(np.full(n, float(v)) for v in _fields(state)))

    @classmethod
    def concat(cls, tracks: Sequence[ActorTrack]) -> ActorTrack:
        """Join tracks end to end."""
        return cls(*(np.concatenate(parts) for parts in zip(*map(_fields, tracks), strict=True)))

    def reversed(self) -> ActorTrack:
        """The same track played backwards."""
        return ActorTrack(*(a[::-1].copy() for a in _fields(self)))

    def state(self, i: int) -> ActorState:
        """The state at frame ``i``."""
        return ActorState(*(float(a[i]) for a in _fields(self)))


def _fields(obj: ActorState | ActorTrack) -> tuple[Any, ...]:
    return obj.x, obj.y, obj.radius, obj.angle, obj.opacity


@dataclass(frozen=True)
class Action:
    """The drawn parameters of one action.

    Attributes:
        label: Class index into ``CLASS_NAMES``.
        speed: How fast it happens, in ``unit`` (0 for ``stay_still``). A speed capped to keep the
            actor in the frame is reported as capped.
        unit: ``"frame/s"`` (moves, frame sides per second), ``"deg/s"`` (rotations), ``"x/s"``
            (grow and shrink, size factor per second), ``"1/s"`` (appear and disappear, opacity per
            second) or ``""``.
        heading: Direction of a move on screen in degrees (0 right, 90 down); 0 otherwise.
    """

    label: int
    speed: float
    unit: str
    heading: float = 0.0

    @property
    def name(self) -> str:
        """The class name."""
        return CLASS_NAMES[self.label]


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything in a clip or stream besides the actor.

    Attributes:
        background: ``(H, W, 3)`` uint8 clean background with the static distractors, before
            flicker and noise; ``frames - background`` shows the actor and the drifting distractors.
        background_params: The resolution-independent description it was rendered from.
        distractors: All distractor objects (static and drifting).
        noise_std: Standard deviation of the per-pixel noise, 0-255 units.
        flicker: ``(amplitude, hertz, phase)`` of the brightness flicker.
        look: The varied scene's draws, or ``None`` for a classic scene.
        plane: For a panning background, ``(H + 2P, W + 2P, 3)`` float32 of which each frame
            shows an ``(H, W)`` window; ``None`` otherwise.
    """

    background: np.ndarray
    background_params: BackgroundParams
    distractors: tuple[Distractor, ...]
    noise_std: float
    flicker: tuple[float, float, float]
    look: VariedLook | None = None
    plane: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Clip:
    """One generated clip and everything drawn to make it.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        label: Class index into ``CLASS_NAMES``.
        seed: The seed it was generated from.
        spec: The spec it was generated with.
        actor: How the actor looks.
        action: The action's drawn parameters.
        track: The actor's state in every frame.
        scene: Background, distractors, noise and flicker.
    """

    frames: np.ndarray
    label: int
    seed: int
    spec: ClipSpec
    actor: Actor
    action: Action
    track: ActorTrack
    scene: Scene

    @property
    def name(self) -> str:
        """The class name."""
        return CLASS_NAMES[self.label]

    @property
    def fps(self) -> float:
        """Frame rate."""
        return self.spec.fps


@dataclass(frozen=True)
class Segment:
    """A run of frames of a stream with one label.

    Attributes:
        start: First frame.
        stop: One past the last frame.
        action: The action done over these frames (``stay_still`` for idle gaps).
    """

    start: int
    stop: int
    action: Action

    @property
    def label(self) -> int:
        """Class index."""
        return self.action.label

    @property
    def name(self) -> str:
        """Class name."""
        return self.action.name

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class Stream:
    """A long video of one actor doing a sequence of actions with idle gaps between them.

    Attributes:
        frames: ``(F, H, W, 3)`` uint8 RGB frames.
        labels: ``(F,)`` int64 ground-truth class per frame (``IDLE_LABEL`` in the gaps).
        segments: The runs of frames, in order, covering all frames.
        seed: The seed it was generated from.
        spec: Resolution, frame rate, noise and distractor settings (``spec.frames`` is unused).
        actor: How the actor looks.
        track: The actor's state in every frame.
        scene: Background, distractors, noise and flicker.
    """

    frames: np.ndarray
    labels: np.ndarray
    segments: tuple[Segment, ...]
    seed: int
    spec: ClipSpec
    actor: Actor
    track: ActorTrack
    scene: Scene

    @property
    def fps(self) -> float:
        """Frame rate."""
        return self.spec.fps


def label_for_seed(seed: int) -> int:
    """The class of a seed's clip when no label is asked for: ``seed % NUM_CLASSES``."""
    return seed % NUM_CLASSES


# --- planning: what the actor does in each frame --------------------------------------------------


def _box(radius: float) -> tuple[float, float]:
    """Range of centre positions that keep an actor of this radius inside the frame."""
    return radius + MARGIN, 1.0 - radius - MARGIN


def _place(u: float, lo: float, hi: float) -> float:
    """Map a uniform draw to ``[lo, hi]`` (the midpoint when the range is empty)."""
    return lo + u * (hi - lo) if hi > lo else 0.5 * (lo + hi)


def _room(pos: float, step: float, lo: float, hi: float) -> float:
    """How far one can travel from ``pos`` by ``step`` per unit before leaving ``[lo, hi]``."""
    if step > 0:
        return max(hi - pos, 0.0) / step
    if step < 0:
        return max(pos - lo, 0.0) / -step
    return float("inf")


def _size_limits(scene: str) -> tuple[float, float]:
    """Circumradius range while growing or shrinking in a scene: its look's, else the classic."""
    ranges = LOOK_RANGES.get(scene)
    return SIZE_LIMITS if ranges is None else ranges.size_limits


def _plan(
    rng: np.random.Generator,
    label: int,
    start: ActorState,
    n: int,
    fps: float,
    free: bool,
    size_limits: tuple[float, float] = SIZE_LIMITS,
) -> tuple[ActorTrack, Action] | None:
    """Plan ``n`` frames of one action.

    Args:
        rng: Random generator; each action draws a fixed number of values.
        label: The action.
        start: The actor before the action. With ``free``, its position (and for the size actions
            its radius) is chosen here instead so that the whole action fits in the frame.
        n: Number of frames.
        fps: Frame rate.
        free: True for a clip (place the actor anywhere that fits), False for a stream (start from
            ``start`` exactly).
        size_limits: Circumradius range while growing or shrinking.

    Returns:
        The track and the action's parameters, or ``None`` when a stream's actor has no room for it.
    """
    name = CLASS_NAMES[label]
    t = np.arange(n) / fps
    span = (n - 1) / fps
    tau = t / span  # 0 at the first frame, 1 at the last
    x, y, r, a, op = start.x, start.y, start.radius, start.angle, start.opacity
    ux, uy = rng.random(2)  # placement draws, used by every action in a clip
    lo, hi = _box(r)
    if free:
        x, y = _place(ux, lo, hi), _place(uy, lo, hi)

    if name == "stay_still":
        return ActorTrack.hold(ActorState(x, y, r, a, op), n), Action(label, 0.0, "")

    if name in _HEADING:
        speed = rng.uniform(*MOVE_SPEED)
        heading = _HEADING[name] + rng.uniform(-MOVE_JITTER, MOVE_JITTER)
        cx, cy = np.cos(np.deg2rad(heading)), np.sin(np.deg2rad(heading))
        dist = speed * span
        if free:
            dist = min(dist, (hi - lo) / max(abs(cx), abs(cy)))
            x = _place(ux, lo + max(0.0, -cx * dist), hi - max(0.0, cx * dist))
            y = _place(uy, lo + max(0.0, -cy * dist), hi - max(0.0, cy * dist))
        else:
            room = min(_room(x, cx, lo, hi), _room(y, cy, lo, hi))
            if room < min(dist, MIN_STREAM_MOVE):
                return None
            dist = min(dist, room)
        track = ActorTrack(
            x + cx * dist * tau,
            y + cy * dist * tau,
            np.full(n, r),
            np.full(n, a),
            np.full(n, op),
        )
        return track, Action(label, dist / span, "frame/s", heading % 360.0)

    if name.startswith("rotate_"):
        speed = rng.uniform(*ROTATE_SPEED)
        sign = 1.0 if name == "rotate_clockwise" else -1.0
        track = ActorTrack(
            np.full(n, x), np.full(n, y), np.full(n, r), a + sign * speed * t, np.full(n, op)
        )
        return track, Action(label, speed, "deg/s")

    if name in ("grow", "shrink"):
        rate, us = rng.uniform(*GROW_RATE), rng.random()
        factor = rate**span
        r_min, r_max = size_limits
        if free:
            factor = min(factor, r_max / r_min)
            small = r_min * (r_max / (r_min * factor)) ** us
            big = small * factor
            lo, hi = _box(big)
            x, y = _place(ux, lo, hi), _place(uy, lo, hi)
            r = small if name == "grow" else big
        else:
            if name == "grow":
                room = min(r_max, x - MARGIN, 1 - x - MARGIN, y - MARGIN, 1 - y - MARGIN) / r
            else:
                room = r / r_min
            if room < min(factor, MIN_STREAM_SCALE):
                return None
            factor = min(factor, room)
        sign = 1.0 if name == "grow" else -1.0
        # Exponential in time, so that shrinking is exactly growing played backwards.
        track = ActorTrack(
            np.full(n, x), np.full(n, y), r * factor ** (sign * tau), np.full(n, a), np.full(n, op)
        )
        return track, Action(label, float(factor ** (1 / span)), "x/s")

    # appear / disappear
    fade, onset, turn = rng.uniform(*FADE_TIME), rng.random(), rng.uniform(0.0, 360.0)
    if name == "appear":
        if not free:
            if op > 0:
                return None
            # Unseen, the actor may come back anywhere, facing anywhere.
            x, y, a = _place(ux, lo, hi), _place(uy, lo, hi), turn
        ramp_sign = 1.0
    else:
        if not free and op < 1:
            return None
        ramp_sign = -1.0
    fade = min(fade, span)
    t0 = onset * (span - fade)
    ramp = np.clip((t - t0) / fade, 0.0, 1.0)
    opacity = ramp if ramp_sign > 0 else 1.0 - ramp
    track = ActorTrack(np.full(n, x), np.full(n, y), np.full(n, r), np.full(n, a), opacity)
    return track, Action(label, 1.0 / fade, "1/s")


# --- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """Seeded generators for the independent parts of one clip or stream."""

    actor: np.random.Generator
    background: np.random.Generator
    distractors: np.random.Generator
    sensor: np.random.Generator
    pixels: np.random.Generator
    variety: np.random.Generator

    @classmethod
    def from_entropy(cls, entropy: list[int]) -> _Draws:
        # Separate streams keep, e.g., the actor's draws independent of how many distractors or
        # pixels there are, so a seed means the same actor at every resolution and frame count.
        # The varied scene's stream is spawned last: the first five are the classic scene's.
        children = np.random.SeedSequence(entropy).spawn(6)
        return cls(*(np.random.default_rng(c) for c in children))


def _draw_scene(
    draws: _Draws, spec: ClipSpec
) -> tuple[BackgroundParams, Actor, tuple[Distractor, ...], float, tuple[float, float, float]]:
    bg = draw_background_params(draws.background)
    shape = SHAPE_NAMES[int(draws.actor.integers(len(SHAPE_NAMES)))]
    colour = pick_colour(draws.actor, bg.palette(), 110.0, (0.5, 1.0), (0.55, 1.0))
    actor = Actor(shape, colour, marker_colour_for(colour))
    distractors = draw_distractors(draws.distractors, spec.distractors, bg.palette())
    noise_std = float(draws.sensor.uniform(*spec.noise_std))
    flicker = (
        float(draws.sensor.uniform(0.0, spec.flicker)),
        float(draws.sensor.uniform(0.3, 2.0)),
        float(draws.sensor.uniform(0.0, 2 * np.pi)),
    )
    return bg, actor, distractors, noise_std, flicker


def _render(
    scene: Scene,
    actor: Actor,
    track: ActorTrack,
    size: int,
    fps: float,
    pixels: np.random.Generator,
) -> np.ndarray:
    """Render every frame of a track over a scene.

    Returns:
        ``(N, size, size, 3)`` uint8 frames.
    """
    n = len(track)
    out = np.empty((n, size, size, 3), np.uint8)
    shape = get_shape(actor.shape)
    colour = np.asarray(actor.colour, np.float32)
    marker = np.asarray(actor.marker_colour, np.float32)
    background = scene.background.astype(np.float32)
    for s in range(0, n, _CHUNK):
        e = min(s + _CHUNK, n)
        t = np.arange(s, e) / fps
        canvas = np.empty((e - s, size, size, 3), np.float32)
        if scene.plane is None or scene.look is None:
            canvas[:] = background
        else:  # a panning background: each frame is a window of the larger plane
            pad = (scene.plane.shape[0] - size) // 2
            for i, (ox, oy) in enumerate(pan_offsets(scene.look, t, size, pad).tolist()):
                canvas[i] = scene.plane[oy : oy + size, ox : ox + size]
        draw_moving_distractors(canvas, scene.distractors, size, t)
        draw_shapes(
            canvas,
            shape,
            colour,
            track.x[s:e] * size,
            track.y[s:e] * size,
            track.radius[s:e] * size,
            np.deg2rad(track.angle[s:e]),
            track.opacity[s:e],
            marker_colour=marker,
            marker_offset=actor.marker_offset,
            marker_radius=actor.marker_radius,
        )
        add_sensor_effects(canvas, t, scene.noise_std, scene.flicker, pixels)
        np.clip(canvas, 0.0, 255.0, out=canvas)
        canvas += np.float32(0.5)  # round to nearest on the cast below
        out[s:e] = canvas
    return out


def _make_scene(draws: _Draws, spec: ClipSpec) -> tuple[Scene, Actor]:
    bg, actor, distractors, noise_std, flicker = _draw_scene(draws, spec)
    if spec.scene == "classic":
        background = render_background(bg, spec.size, draws.pixels, distractors)
        return Scene(background, bg, distractors, noise_std, flicker), actor
    look = draw_varied_look(draws.variety, LOOK_RANGES[spec.scene])
    colour = look.colour(draws.variety, bg)
    actor = Actor(
        look.shape, colour, marker_colour_for(colour), look.marker_offset, look.marker_radius
    )
    pad = round(0.1 * spec.size) if look.pan != (0.0, 0.0) else 0
    # Distractors are placed on the full plane; a panning plane carries them along.
    classic = render_background(bg, spec.size + 2 * pad, draws.pixels, distractors)
    plane = render_varied_plane(look, classic, draws.variety)
    window = np.rint(plane[pad : pad + spec.size, pad : pad + spec.size]).astype(np.uint8)
    scene = Scene(window, bg, distractors, look.noise_std, flicker, look, plane if pad else None)
    return scene, actor


# --- public generators ----------------------------------------------------------------------------


def _check_seed(seed: int) -> int:
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seeds must be non-negative, got {seed}")
    return seed


def generate_clip(seed: int, label: int | None = None, spec: ClipSpec | None = None) -> Clip:
    """Generate one clip.

    Args:
        seed: Non-negative seed; the clip is a pure function of ``(seed, label, spec)``.
        label: Class index to generate; ``None`` takes ``label_for_seed(seed)``, which balances the
            classes over any run of consecutive seeds.
        spec: Frames, size, frame rate and scene settings (``ClipSpec()`` if omitted).

    Returns:
        The clip with its frames, label and drawn parameters.
    """
    seed = _check_seed(seed)
    spec = spec or ClipSpec()
    label = label_for_seed(seed) if label is None else int(label)
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    name = CLASS_NAMES[label]
    # One class of each reversed pair is the other's plan played backwards, drawn from the same
    # entropy: the two classes share every distribution (and, for one seed, every pixel of the
    # scene) and differ only in the order of the frames.
    forward = _FORWARD.get(name, name)
    draws = _Draws.from_entropy([_CLIP_SALT, seed, CLASS_NAMES.index(forward)])
    scene, actor = _make_scene(draws, spec)
    rng = draws.actor
    start = ActorState(
        x=0.5, y=0.5, radius=float(rng.uniform(*ACTOR_RADIUS)), angle=float(rng.uniform(0, 360))
    )
    if scene.look is not None:
        start = replace(start, radius=scene.look.radius)
    limits = _size_limits(spec.scene)
    planned = _plan(
        rng, CLASS_NAMES.index(forward), start, spec.frames, spec.fps, free=True, size_limits=limits
    )
    assert planned is not None  # a free plan always fits
    track, action = planned
    if forward != name:
        track = track.reversed()
        heading = (action.heading + 180.0) % 360.0 if action.unit == "frame/s" else 0.0
        action = replace(action, label=label, heading=heading)
    frames = _render(scene, actor, track, spec.size, spec.fps, draws.pixels)
    return Clip(frames, label, seed, spec, actor, action, track, scene)


def generate_batch(
    seeds: Sequence[int], spec: ClipSpec | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a batch of clips, each labelled ``label_for_seed(seed)``.

    Any ``NUM_CLASSES`` consecutive seeds hold every class once, so a ``range`` of seeds whose
    length is a multiple of ``NUM_CLASSES`` is exactly balanced. Draw training batches from
    ``TRAIN_SEEDS`` and evaluation batches from ``HELDOUT_SEEDS``.

    Args:
        seeds: Non-negative seeds (a ``range`` works).
        spec: The clip spec (``ClipSpec()`` if omitted).

    Returns:
        ``(N, T, H, W, 3)`` uint8 frames and ``(N,)`` int64 labels.
    """
    spec = spec or ClipSpec()
    frames = np.empty((len(seeds), spec.frames, spec.size, spec.size, 3), np.uint8)
    labels = np.empty(len(seeds), np.int64)
    for i, seed in enumerate(seeds):
        clip = generate_clip(seed, spec=spec)
        frames[i] = clip.frames
        labels[i] = clip.label
    return frames, labels


def generate_stream(
    seed: int,
    num_actions: int = 6,
    spec: ClipSpec | None = None,
    idle_frames: tuple[int, int] = (5, 20),
    action_frames: tuple[int, int] = (8, 16),
) -> Stream:
    """Generate a long video of one actor doing a chain of actions, with per-frame labels.

    The stream opens and closes with an idle gap and has one between every two actions; idle
    frames are labelled ``stay_still`` (the actor is present and does nothing). The actor's state
    carries over from one action to the next and every action is chosen among those that have
    room where the actor is, so it never leaves the frame. A ``disappear`` is always followed
    directly by an ``appear`` (with no idle gap, since an idle actor is a present one); the actor
    may come back elsewhere. Segment lengths are drawn in frames, speeds per second as in clips.

    Args:
        seed: Non-negative seed (streams and clips of one seed are unrelated).
        num_actions: Number of actions, at least 1.
        spec: Size, frame rate and scene settings; ``spec.frames`` is not used.
        idle_frames: Inclusive range of the length of an idle gap, frames (0 allowed).
        action_frames: Inclusive range of the length of an action, frames (at least 2).

    Returns:
        The stream with frames, per-frame labels and its segments.
    """
    seed = _check_seed(seed)
    spec = spec or ClipSpec()
    if num_actions < 1:
        raise ValueError(f"num_actions must be at least 1, got {num_actions}")
    if not 0 <= idle_frames[0] <= idle_frames[1]:
        raise ValueError(f"idle_frames must be a range (min, max) >= 0, got {idle_frames}")
    if not 2 <= action_frames[0] <= action_frames[1]:
        raise ValueError(f"action_frames must be a range (min, max) >= 2, got {action_frames}")
    draws = _Draws.from_entropy([_STREAM_SALT, seed])
    scene, actor = _make_scene(draws, spec)
    limits = _size_limits(spec.scene)
    rng = draws.actor
    radius = float(rng.uniform(*ACTOR_RADIUS))
    lo, hi = _box(radius)
    state = ActorState(
        x=float(rng.uniform(lo, hi)),
        y=float(rng.uniform(lo, hi)),
        radius=radius,
        angle=float(rng.uniform(0, 360)),
    )
    tracks: list[ActorTrack] = []
    segments: list[Segment] = []

    def add(track: ActorTrack, action: Action) -> None:
        if len(track):
            start = segments[-1].stop if segments else 0
            tracks.append(track)
            segments.append(Segment(start, start + len(track), action))

    idle = Action(IDLE_LABEL, 0.0, "")
    appear = CLASS_NAMES.index("appear")
    disappear = CLASS_NAMES.index("disappear")
    for k in range(num_actions):
        if state.opacity > 0:
            add(ActorTrack.hold(state, int(rng.integers(*idle_frames, endpoint=True))), idle)
            # A disappear needs a following action to bring the actor back.
            candidates = [
                c for c in _ACTIONS if c != appear and (c != disappear or k < num_actions - 1)
            ]
        else:
            candidates = [appear]
        n = int(rng.integers(*action_frames, endpoint=True))
        for label in rng.permutation(candidates):
            planned = _plan(rng, int(label), state, n, spec.fps, free=False, size_limits=limits)
            if planned is not None:
                add(*planned)
                state = planned[0].state(n - 1)
                break
        else:  # unreachable: rotations always have room
            raise AssertionError("no action fits")
    add(ActorTrack.hold(state, int(rng.integers(*idle_frames, endpoint=True))), idle)

    track = ActorTrack.concat(tracks)
    labels = np.concatenate([np.full(len(s), s.label, np.int64) for s in segments])
    frames = _render(scene, actor, track, spec.size, spec.fps, draws.pixels)
    return Stream(frames, labels, tuple(segments), seed, spec, actor, track, scene)
