"""Tests of the procedural action dataset: determinism, balance, shapes and what the pixels show."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest

import model_core.data as data
from model_core.data import (
    CLASS_NAMES,
    HELDOUT_SEEDS,
    IDLE_LABEL,
    NUM_CLASSES,
    REVERSED_PAIRS,
    SHAPE_NAMES,
    TRAIN_SEEDS,
    Clip,
    ClipSpec,
    Stream,
    generate_batch,
    generate_clip,
    generate_stream,
    label_for_seed,
)

# Distractors would pollute the foreground masks that the motion checks read.
CLEAN = ClipSpec(distractors=(0, 0))
# Nothing random per frame: then a clip and its reversed partner match pixel for pixel.
STILL = ClipSpec(distractors=(0, 0), noise_std=(0.0, 0.0), flicker=0.0)


def label_of(name: str) -> int:
    return CLASS_NAMES.index(name)


def foreground(video: Clip | Stream) -> np.ndarray:
    """``(T, H, W)`` mask of pixels far from the clean background."""
    diff = video.frames.astype(np.float32) - video.scene.background.astype(np.float32)
    # Noise and flicker move a background pixel by well under 40; actor colours are chosen at
    # least 110 away from the background's palette.
    return np.linalg.norm(diff, axis=-1) > 40.0


def blob_track(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid x, y (pixels) and area of the mask in every frame."""
    _, h, w = mask.shape
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask.sum(axis=1) * xs).sum(axis=1) / area
        cy = (mask.sum(axis=2) * ys).sum(axis=1) / area
    return cx, cy, area


def marker_angle(clip: Clip) -> np.ndarray:
    """Angle (degrees, clockwise on screen) of the marker disc around the actor's centre, per frame.

    Needs a clip without noise or flicker, where a pixel differs from the background exactly where
    something is drawn: the marker is what is drawn, away from the rim, in the marker's colour.
    The centre is taken from the track (a rotating actor does not move).
    """
    size = clip.spec.size
    cx, cy = clip.track.x[0] * size, clip.track.y[0] * size
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    near = np.hypot(xx - cx, yy - cy) < clip.track.radius[0] * size
    drawn = (clip.frames != clip.scene.background).any(axis=-1)
    # Drop the actor's anti-aliased rim, where fill and background blend into any colour.
    inner = drawn.copy()
    for dy, dx in [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)]:
        inner &= np.roll(drawn, (dy, dx), axis=(1, 2))
    colour = np.asarray(clip.actor.marker_colour, np.float32)
    close = np.linalg.norm(clip.frames.astype(np.float32) - colour, axis=-1) < 45.0
    hits = close & near & inner
    assert (hits.sum(axis=(1, 2)) > 3).all(), "marker not found in every frame"
    mx = (hits * xx).sum(axis=(1, 2)) / hits.sum(axis=(1, 2))
    my = (hits * yy).sum(axis=(1, 2)) / hits.sum(axis=(1, 2))
    return np.rad2deg(np.unwrap(np.arctan2(my - cy, mx - cx)))


def test_classes_are_plain_and_include_the_reversed_pairs() -> None:
    assert len(CLASS_NAMES) == NUM_CLASSES >= 10
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    assert CLASS_NAMES[IDLE_LABEL] == "stay_still"
    for first, second in REVERSED_PAIRS:
        assert first in CLASS_NAMES and second in CLASS_NAMES
    assert all(name.replace("_", "").isalpha() and name.islower() for name in CLASS_NAMES)


def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    a, b = generate_clip(7), generate_clip(7)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.label == b.label == label_for_seed(7)
    assert a.action == b.action and a.actor == b.actor
    assert generate_clip(7).frames.tobytes() != generate_clip(7 + NUM_CLASSES).frames.tobytes()
    assert generate_clip(7).frames.tobytes() != generate_clip(8).frames.tobytes()
    frames_a, labels_a = generate_batch(range(5))
    frames_b, labels_b = generate_batch([0, 1, 2, 3, 4])
    assert frames_a.tobytes() == frames_b.tobytes()
    assert np.array_equal(labels_a, labels_b)


def test_label_none_means_the_seeds_label() -> None:
    seed = 3 * NUM_CLASSES + 4
    assert generate_clip(seed).frames.tobytes() == generate_clip(seed, label=4).frames.tobytes()
    other = generate_clip(seed, label=5)
    assert other.label == 5 and other.name == CLASS_NAMES[5]


def test_classes_are_balanced_over_seed_ranges() -> None:
    for seeds in (TRAIN_SEEDS, HELDOUT_SEEDS):
        window = seeds[: 50 * NUM_CLASSES]
        counts = np.bincount([label_for_seed(s) for s in window], minlength=NUM_CLASSES)
        assert (counts == 50).all()
    _, labels = generate_batch(HELDOUT_SEEDS[: 2 * NUM_CLASSES])
    assert (np.bincount(labels, minlength=NUM_CLASSES) == 2).all()


def test_train_and_heldout_seeds_are_disjoint() -> None:
    assert TRAIN_SEEDS.step == HELDOUT_SEEDS.step == 1
    assert TRAIN_SEEDS.stop <= HELDOUT_SEEDS.start or HELDOUT_SEEDS.stop <= TRAIN_SEEDS.start
    assert TRAIN_SEEDS.start % NUM_CLASSES == HELDOUT_SEEDS.start % NUM_CLASSES == 0
    assert len(TRAIN_SEEDS) > 10**8 and len(HELDOUT_SEEDS) > 10**6


@pytest.mark.parametrize("frames", [8, 16])
@pytest.mark.parametrize("size", [112, 224])
def test_shapes_and_dtypes(frames: int, size: int) -> None:
    spec = ClipSpec(frames=frames, size=size)
    x, y = generate_batch(range(3), spec)
    assert x.shape == (3, frames, size, size, 3) and x.dtype == np.uint8
    assert y.shape == (3,) and y.dtype == np.int64
    clip = generate_clip(9, spec=spec)
    assert clip.frames.shape == (frames, size, size, 3) and clip.frames.dtype == np.uint8
    assert clip.scene.background.shape == (size, size, 3)
    assert len(clip.track) == frames


@pytest.mark.parametrize(("frames", "size"), [(2, 32), (5, 33), (24, 64)])
def test_any_frame_count_and_size(frames: int, size: int) -> None:
    for seed in range(NUM_CLASSES):
        clip = generate_clip(seed, spec=ClipSpec(frames=frames, size=size, fps=7.5))
        assert clip.frames.shape == (frames, size, size, 3)


def test_bad_arguments_are_refused() -> None:
    for kwargs in ({"frames": 1}, {"size": 31}, {"fps": 0.0}, {"distractors": (2, 1)}):
        with pytest.raises(ValueError):
            ClipSpec(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generate_clip(-1)
    with pytest.raises(ValueError):
        generate_clip(0, label=NUM_CLASSES)


def test_a_seed_is_the_same_scene_at_every_spec() -> None:
    base = generate_clip(2)
    for spec in (ClipSpec(size=224), ClipSpec(frames=16), ClipSpec(fps=30.0)):
        other = generate_clip(2, spec=spec)
        assert other.actor == base.actor
        assert other.action.speed == pytest.approx(base.action.speed)
        assert other.scene.distractors == base.scene.distractors
        assert other.scene.noise_std == base.scene.noise_std


def test_shapes_actors_and_scenes_vary() -> None:
    clips = [generate_clip(s) for s in range(3 * NUM_CLASSES)]
    assert len({c.actor.shape for c in clips}) >= len(SHAPE_NAMES) // 2
    assert len({c.actor.colour for c in clips}) == len(clips)
    assert len({c.scene.background_params.texture for c in clips}) >= 3
    assert len({len(c.scene.distractors) for c in clips}) >= 3
    assert any(d.static for c in clips for d in c.scene.distractors)
    assert any(not d.static for c in clips for d in c.scene.distractors)


def test_the_actor_stays_in_frame_and_the_action_is_clearly_visible() -> None:
    for spec in (ClipSpec(), ClipSpec(frames=16), ClipSpec(frames=16, fps=5.0)):
        for seed in range(3 * NUM_CLASSES):
            clip = generate_clip(seed, spec=spec)
            tr = clip.track
            assert (tr.x - tr.radius >= 0).all() and (tr.x + tr.radius <= 1).all()
            assert (tr.y - tr.radius >= 0).all() and (tr.y + tr.radius <= 1).all()
            name = clip.name
            if spec.fps != 10.0:
                continue
            if name.startswith("move_"):
                assert np.hypot(tr.x[-1] - tr.x[0], tr.y[-1] - tr.y[0]) >= 0.2
            elif name.startswith("rotate_"):
                assert abs(tr.angle[-1] - tr.angle[0]) >= 80.0
            elif name in ("grow", "shrink"):
                ratio = tr.radius[-1] / tr.radius[0]
                assert max(ratio, 1 / ratio) >= 1.5
            elif name in ("appear", "disappear"):
                assert {tr.opacity[0], tr.opacity[-1]} == {0.0, 1.0}


def test_moves_go_the_right_way_in_the_pixels() -> None:
    size = CLEAN.size
    for name, axis, sign in [
        ("move_left", 0, -1),
        ("move_right", 0, 1),
        ("move_up", 1, -1),
        ("move_down", 1, 1),
    ]:
        for seed in range(4):
            clip = generate_clip(seed, label=label_of(name), spec=CLEAN)
            cx, cy, area = blob_track(foreground(clip))
            assert (area > 20).all()
            along, across = (cx, cy) if axis == 0 else (cy, cx)
            steps = np.diff(along) * sign
            assert (steps > 1.0).all(), (name, seed, along)
            assert (along[-1] - along[0]) * sign >= 0.2 * size
            assert abs(across[-1] - across[0]) < 0.1 * size


def test_sizes_and_fades_change_the_right_way_in_the_pixels() -> None:
    for seed in range(4):
        _, _, grow = blob_track(foreground(generate_clip(seed, label_of("grow"), CLEAN)))
        _, _, shrink = blob_track(foreground(generate_clip(seed, label_of("shrink"), CLEAN)))
        assert grow[-1] > 1.8 * grow[0] and (np.diff(grow) >= 0).all()
        assert shrink[0] > 1.8 * shrink[-1] and (np.diff(shrink) <= 0).all()
        _, _, appear = blob_track(foreground(generate_clip(seed, label_of("appear"), CLEAN)))
        _, _, gone = blob_track(foreground(generate_clip(seed, label_of("disappear"), CLEAN)))
        assert appear[0] == 0 and appear[-1] > 30
        assert gone[0] > 30 and gone[-1] == 0
        _, _, still = blob_track(foreground(generate_clip(seed, label_of("stay_still"), CLEAN)))
        assert still.min() > 30 and still.max() - still.min() <= 0.1 * still.mean()


def test_rotations_turn_the_right_way_in_the_pixels() -> None:
    for seed in range(6):
        cw = generate_clip(seed, label_of("rotate_clockwise"), STILL)
        acw = generate_clip(seed, label_of("rotate_anticlockwise"), STILL)
        # Angles grow clockwise on screen (y points down).
        turn_cw, turn_acw = marker_angle(cw), marker_angle(acw)
        assert (np.diff(turn_cw) > 0).all() and (np.diff(turn_acw) < 0).all()
        expected = cw.action.speed * cw.spec.duration
        assert turn_cw[-1] - turn_cw[0] == pytest.approx(expected, abs=25.0)


@pytest.mark.parametrize(("first", "second"), REVERSED_PAIRS)
def test_each_pair_is_its_partner_played_backwards(first: str, second: str) -> None:
    for seed in range(3):
        a = generate_clip(seed, label_of(first), STILL)
        b = generate_clip(seed, label_of(second), STILL)
        assert a.label != b.label
        assert np.array_equal(a.frames, b.frames[::-1])
        noisy_a = generate_clip(seed, label_of(first))
        noisy_b = generate_clip(seed, label_of(second))
        for got, want in zip(
            (noisy_a.track.x, noisy_a.track.radius, noisy_a.track.angle, noisy_a.track.opacity),
            (noisy_b.track.x, noisy_b.track.radius, noisy_b.track.angle, noisy_b.track.opacity),
            strict=True,
        ):
            np.testing.assert_allclose(got, want[::-1])
        assert noisy_a.action.speed == pytest.approx(noisy_b.action.speed)


def test_fps_sets_the_motion_per_frame() -> None:
    label = label_of("move_right")
    slow = generate_clip(4, label, ClipSpec(distractors=(0, 0), fps=30.0))
    fast = generate_clip(4, label, ClipSpec(distractors=(0, 0), fps=10.0))
    assert slow.action.speed == pytest.approx(fast.action.speed)
    assert np.diff(slow.track.x).mean() == pytest.approx(np.diff(fast.track.x).mean() / 3)
    step_slow = np.diff(blob_track(foreground(slow))[0]).mean()
    step_fast = np.diff(blob_track(foreground(fast))[0]).mean()
    assert step_fast / step_slow == pytest.approx(3.0, rel=0.15)


def test_distractors_do_not_do_actions() -> None:
    spec = ClipSpec(distractors=(3, 3))
    for seed in range(NUM_CLASSES):
        clip = generate_clip(seed, spec=spec)
        for d in clip.scene.distractors:
            assert np.hypot(d.vx, d.vy) <= 0.05 < 0.35
            assert d.radius < 0.07


# --- streams --------------------------------------------------------------------------------------


def test_stream_segments_and_labels() -> None:
    for seed in range(6):
        stream = generate_stream(seed, num_actions=6, spec=CLEAN)
        n = len(stream.frames)
        assert stream.frames.shape == (n, 112, 112, 3) and stream.frames.dtype == np.uint8
        assert stream.labels.shape == (n,) and stream.labels.dtype == np.int64
        assert len(stream.track) == n
        segs = stream.segments
        assert segs[0].start == 0 and segs[-1].stop == n
        assert all(a.stop == b.start for a, b in itertools.pairwise(segs))
        for seg in segs:
            assert (stream.labels[seg.start : seg.stop] == seg.label).all()
        actions = [s for s in segs if s.label != IDLE_LABEL]
        assert len(actions) == 6
        assert segs[0].label == segs[-1].label == IDLE_LABEL
        for a, b in itertools.pairwise(segs):
            if a.name == "disappear":
                assert b.name == "appear"
            elif a.label != IDLE_LABEL:
                assert b.label == IDLE_LABEL
        for seg in segs:
            assert 5 <= len(seg) <= 20 if seg.label == IDLE_LABEL else 8 <= len(seg) <= 16


def test_stream_is_deterministic_and_seeds_differ() -> None:
    a, b = generate_stream(3, num_actions=3), generate_stream(3, num_actions=3)
    assert a.frames.tobytes() == b.frames.tobytes() and np.array_equal(a.labels, b.labels)
    c = generate_stream(4, num_actions=3)
    assert a.frames.shape != c.frames.shape or a.frames.tobytes() != c.frames.tobytes()


def test_stream_actor_is_continuous_and_in_frame() -> None:
    fps = 10.0
    for seed in range(12):
        stream = generate_stream(seed, num_actions=8, spec=ClipSpec(fps=fps))
        tr = stream.track
        assert (tr.x - tr.radius >= 0).all() and (tr.x + tr.radius <= 1).all()
        assert (tr.y - tr.radius >= 0).all() and (tr.y + tr.radius <= 1).all()
        both = (tr.opacity[1:] > 0) & (tr.opacity[:-1] > 0)
        step = np.hypot(np.diff(tr.x), np.diff(tr.y))[both]
        assert (step <= 0.6 / fps + 1e-9).all()
        idle = stream.labels == IDLE_LABEL
        assert (tr.opacity[idle] == 1.0).all()


def test_streams_use_every_action() -> None:
    seen = set()
    for seed in range(10):
        stream = generate_stream(seed, num_actions=8, spec=ClipSpec(size=32), idle_frames=(1, 2))
        seen.update(int(s.label) for s in stream.segments)
    assert seen == set(range(NUM_CLASSES))


def test_stream_pixels_follow_the_labels() -> None:
    stream = generate_stream(11, num_actions=8, spec=CLEAN)
    cx, cy, area = blob_track(foreground(stream))
    for seg in stream.segments:
        s, e = seg.start, seg.stop
        if seg.label == IDLE_LABEL:
            assert (area[s:e] > 20).all()
            assert np.ptp(cx[s:e]) < 1.0 and np.ptp(cy[s:e]) < 1.0
        elif seg.name == "move_right":
            assert cx[e - 1] - cx[s] > 0.1 * stream.spec.size
        elif seg.name == "move_left":
            assert cx[e - 1] - cx[s] < -0.1 * stream.spec.size
        elif seg.name == "disappear":
            assert area[e - 1] == 0
        elif seg.name == "appear":
            assert area[s] == 0 and area[e - 1] > 20


def test_stream_frame_rate_sets_the_motion_per_frame() -> None:
    stream = generate_stream(2, num_actions=6, spec=ClipSpec(size=32, fps=30.0))
    step = np.hypot(np.diff(stream.track.x), np.diff(stream.track.y))
    visible = (stream.track.opacity[1:] > 0) & (stream.track.opacity[:-1] > 0)
    assert step[visible].max() <= 0.6 / 30.0 + 1e-9


# --- import hygiene -------------------------------------------------------------------------------


def test_the_package_imports_only_numpy_and_the_standard_library_at_import_time() -> None:
    allowed = {"__future__", "collections", "dataclasses", "fractions", "io", "pathlib", "typing"}
    allowed.add("numpy")
    package = Path(data.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in tree.body:  # module level only: PyAV is imported inside functions
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                ok = name.split(".")[0] in allowed or name.startswith("model_core.data")
                assert ok, f"{source.name} imports {name} at module level"


def test_symmetry_order_of_each_outline() -> None:
    from model_core.data.shapes import Shape, get_shape

    orders = {name: get_shape(name).symmetry_order for name in SHAPE_NAMES}
    assert orders == {
        "circle": 0,
        "ellipse": 2,
        "square": 4,
        "rectangle": 2,
        "diamond": 2,
        "triangle": 3,
        "pentagon": 5,
        "hexagon": 6,
        "star": 5,
        "cross": 4,
    }
    # An outline with no symmetry but the full turn.
    kite = Shape.make("kite", np.array([[1.0, 0.0], [0.0, 0.5], [-0.4, 0.0], [0.0, -0.5]]))
    assert kite.symmetry_order == 1
