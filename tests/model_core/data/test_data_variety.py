"""The varied scene (``ClipSpec(scene="varied")``): a seed's classic clip is unchanged by it, the
varied clip keeps the classic clip's action, and it draws what it promises."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from model_core.data import CLASS_NAMES, ClipSpec, generate_clip, generate_stream
from model_core.data.shapes import EXTRA_SHAPE_NAMES, SHAPE_NAMES, get_shape
from model_core.data.variety import FINE, KINDS, VARIED

VARIED_SPEC = ClipSpec(scene="varied")

# sha256 prefixes of the default (classic) clips of these seeds and of one stream, as the
# generator made them before the varied scene existed: the shipped bundles' recorded training
# commands describe these clips, so they must never change.
CLASSIC_CLIPS = {
    0: "eb80dcb01b443f17",
    5: "39e96acadf709bf9",
    12: "2e8a04221e1c5d98",
    99: "cc791a30dcc99e73",
}
CLASSIC_STREAM_3 = "6f5124f991ae1aed"
VARIED_CLIPS = {
    0: "c27e601d6b81115c",
    5: "02b98b1abf685368",
    12: "a565d07568c7e3d5",
    99: "3e58cf2aaed94b85",
}
VARIED_STREAM_3 = "0451a11b3d1068d6"


def _digest(frames: np.ndarray) -> str:
    return hashlib.sha256(frames.tobytes()).hexdigest()[:16]


def test_classic_clips_and_streams_are_what_they_were() -> None:
    for seed, digest in CLASSIC_CLIPS.items():
        assert _digest(generate_clip(seed).frames) == digest
        assert _digest(generate_clip(seed, spec=ClipSpec(scene="classic")).frames) == digest
    assert _digest(generate_stream(3, num_actions=2).frames) == CLASSIC_STREAM_3


def test_a_varied_clip_is_reproducible_and_keeps_the_classic_action() -> None:
    for seed in range(22):
        classic, varied = generate_clip(seed), generate_clip(seed, spec=VARIED_SPEC)
        again = generate_clip(seed, spec=VARIED_SPEC)
        assert np.array_equal(varied.frames, again.frames)
        assert not np.array_equal(varied.frames, classic.frames)
        # Same action and heading; the placement (and a capped speed) follow the actor's size.
        assert varied.label == classic.label
        assert varied.action.unit == classic.action.unit
        assert varied.action.heading == pytest.approx(classic.action.heading)


def test_the_varied_scene_draws_its_range() -> None:
    clips = [generate_clip(s, spec=VARIED_SPEC) for s in range(200)]
    looks = [c.scene.look for c in clips]
    assert all(look is not None for look in looks)
    kinds = {look.kind for look in looks if look is not None}
    assert kinds == set(KINDS)
    panning = [c for c in clips if c.scene.plane is not None]
    assert 30 < len(panning) < 110
    shapes = {c.actor.shape for c in clips}
    assert shapes & set(EXTRA_SHAPE_NAMES) and shapes & set(SHAPE_NAMES)
    radii = [c.track.radius[0] for c in clips if c.name in ("move_left", "stay_still")]
    assert min(radii) < 0.08 and max(radii) > 0.15
    noise = [c.scene.noise_std for c in clips]
    assert min(noise) < 1.0 and max(noise) > 8.0


def test_a_panning_background_moves_and_a_still_one_does_not() -> None:
    still = next(
        c
        for s in range(100)
        if (c := generate_clip(s, CLASS_NAMES.index("stay_still"), VARIED_SPEC)).scene.plane is None
    )
    panning = next(
        c
        for s in range(100)
        if (c := generate_clip(s, CLASS_NAMES.index("stay_still"), VARIED_SPEC)).scene.plane
        is not None
        and np.hypot(*c.scene.look.pan) > 0.08  # type: ignore[union-attr]
    )

    # Frame differences away from the actor: noise alone for a still background, far more when
    # the background pans (its texture slides under the frame).
    def background_change(clip: object) -> float:
        frames = clip.frames.astype(np.float32)  # type: ignore[attr-defined]
        return float(np.abs(frames[-1] - frames[0]).mean())

    assert background_change(panning) > background_change(still) + 2.0


def test_extra_shapes_are_drawable_and_do_not_change_the_classic_list() -> None:
    assert len(SHAPE_NAMES) == 10 and not set(SHAPE_NAMES) & set(EXTRA_SHAPE_NAMES)
    for name in EXTRA_SHAPE_NAMES:
        assert get_shape(name).name == name
    with pytest.raises(ValueError, match="unknown shape"):
        get_shape("blob")


def test_an_unknown_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="scene must be one of"):
        ClipSpec(scene="fancy")


def test_a_varied_clip_is_what_it_was_before_the_fine_scene() -> None:
    # sha256 prefixes of varied clips as the generator made them when the varied stages of the
    # shipped bundles ran (before the fine scene): their recorded commands describe these clips.
    for seed, digest in VARIED_CLIPS.items():
        assert _digest(generate_clip(seed, spec=VARIED_SPEC).frames) == digest
    assert _digest(generate_stream(3, num_actions=2, spec=VARIED_SPEC).frames) == VARIED_STREAM_3


def test_the_fine_scene_is_the_varied_one_with_smaller_actors_and_markers() -> None:
    fine = ClipSpec(scene="fine")
    clips = [(generate_clip(s, spec=VARIED_SPEC), generate_clip(s, spec=fine)) for s in range(220)]
    for varied, small in clips:
        v, f = varied.scene.look, small.scene.look
        assert v is not None and f is not None
        # The same draws: background, shape, noise and action; only sizes and markers differ.
        assert (f.kind, f.shape, f.pan, f.noise_std) == (v.kind, v.shape, v.pan, v.noise_std)
        assert small.label == varied.label and small.action.unit == varied.action.unit
        assert FINE.radius[0] <= f.radius <= FINE.radius[1]
        assert FINE.marker_radius[0] <= f.marker_radius <= FINE.marker_radius[1]
    radii = [s.track.radius[0] for _, s in clips if s.name == "stay_still"]
    assert min(radii) < VARIED.radius[0]  # smaller than the varied scene ever draws
    markers = [s.scene.look.marker_radius for _, s in clips]  # type: ignore[union-attr]
    assert min(markers) < VARIED.marker_radius[0]
    # A shrink may end below the varied scene's smallest size, never below the fine one's.
    ends = [s.track.radius[-1] for _, s in clips if s.name == "shrink"]
    assert min(ends) < VARIED.size_limits[0] and min(ends) >= FINE.size_limits[0] - 1e-9
    # A fine stream grows and shrinks within the fine limits too.
    stream = generate_stream(7, num_actions=6, spec=fine)
    assert stream.track.radius.min() >= FINE.size_limits[0] - 1e-9
