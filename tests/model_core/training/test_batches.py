"""Which seeds a run visits and how they become model input."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from model_core.config import Preprocessing
from model_core.data import HELDOUT_SEEDS, TRAIN_SEEDS, ClipSpec, generate_batch, generate_clip
from model_core.preprocess import preprocess_frames
from model_core.training import (
    Augment,
    ClipBatches,
    CodecAugment,
    FrameRateAugment,
    augment_batch,
    preprocess_batch,
)

PRE = Preprocessing(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop_pct=1.0)
SPEC = ClipSpec(frames=4, size=32)


def source(**kwargs: object) -> ClipBatches:
    args: dict = {"clips": 22, "batch_size": 8, "spec": SPEC, "preprocessing": PRE, **kwargs}
    return ClipBatches(TRAIN_SEEDS, **args)


def test_preprocess_batch_equals_the_shared_path_clip_by_clip() -> None:
    frames, _ = generate_batch(range(3), ClipSpec(frames=4, size=48))
    # A crop below 1 makes the shared path resize and crop, not only normalise.
    spec = Preprocessing(32, (0.4, 0.5, 0.6), (0.2, 0.3, 0.25), crop_pct=0.875)
    batch = preprocess_batch(frames, spec)
    assert batch.shape == (3, 4, 3, 32, 32)
    for clip, expected in zip(batch, frames, strict=True):
        assert torch.equal(clip, preprocess_frames(expected, spec))


def test_an_epoch_visits_its_seeds_once_in_a_seeded_order() -> None:
    batches = source(seed=3)
    plan = list(batches.plan(2))
    assert len(batches) == 3 and [len(s) for _, _, s in plan] == [8, 8, 6] * 2
    for epoch in (0, 1):
        seen = np.concatenate([s for e, _, s in plan if e == epoch])
        assert sorted(seen.tolist()) == list(range(22))
    first, second = (np.concatenate([s for e, _, s in plan if e == k]) for k in (0, 1))
    assert not np.array_equal(first, second)  # reshuffled every epoch
    assert np.array_equal(first, source(seed=3).epoch_seeds(0))
    assert not np.array_equal(first, source(seed=4).epoch_seeds(0))


def test_fresh_epochs_take_new_seeds_and_evaluation_keeps_order() -> None:
    fresh = source(fresh=True, offset=11)
    assert sorted(fresh.epoch_seeds(1).tolist()) == list(range(33, 55))
    held = ClipBatches(HELDOUT_SEEDS, 22, 8, SPEC, PRE, shuffle=False)
    assert held.epoch_seeds(0).tolist() == list(HELDOUT_SEEDS[:22])
    with pytest.raises(ValueError, match="seed range"):
        ClipBatches(range(10), 11, 4, SPEC, PRE)


def test_background_batches_match_batches_made_in_place() -> None:
    batches = source(augment=Augment())
    made = list(batches.batches(1))
    assert [(b.epoch, b.index) for b in made] == [(0, 0), (0, 1), (0, 2)]
    for batch, plan in zip(made, batches.plan(1), strict=True):
        direct = batches.make(*plan)
        assert torch.equal(batch.inputs, direct.inputs)
        assert torch.equal(batch.labels, direct.labels)
        assert batch.labels.tolist() == [s % 11 for s in plan[2].tolist()]


def test_an_endless_source_can_be_left_early() -> None:
    stream = source().batches(None)
    taken = list(itertools.islice(stream, 5))
    stream.close()  # stops the background thread
    assert [b.epoch for b in taken] == [0, 0, 0, 1, 1]


def test_an_error_while_making_a_batch_reaches_the_consumer() -> None:
    # Seeds past the end of the range are refused when the second epoch is planned.
    batches = ClipBatches(range(30), 22, 11, SPEC, PRE, fresh=True)
    with pytest.raises(ValueError, match="past the end"):
        list(batches.batches(2))


def test_augmentation_is_the_same_in_every_frame_and_keeps_their_order() -> None:
    # Frames of one flat grey each, brightening over time.
    levels = torch.linspace(-0.8, 0.8, 6)
    clip = levels.view(1, 6, 1, 1, 1).expand(4, 6, 3, 32, 32).contiguous()
    out = augment_batch(clip, PRE, Augment(), torch.Generator().manual_seed(0))
    again = augment_batch(clip, PRE, Augment(), torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    means = out.mean(dim=(2, 3, 4))  # (clips, frames)
    assert bool((means.diff(dim=1) > 0).all())  # no clip is played backwards
    assert not torch.equal(out, clip)

    # A shift moves every frame alike: a clip of identical frames stays one.
    still = torch.randn(1, 1, 3, 32, 32).expand(2, 5, 3, 32, 32).contiguous()
    moved = augment_batch(still, PRE, Augment(max_shift=4), torch.Generator().manual_seed(1))
    assert torch.equal(moved, moved[:, :1].expand_as(moved))


def test_worker_processes_make_the_same_batches() -> None:
    batches = source(augment=Augment())
    threaded = list(batches.batches(1))
    forked = list(batches.batches(1, workers=1, prefetch=1))
    assert len(forked) == len(threaded) == 3
    for a, b in zip(threaded, forked, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)


def test_codec_augmentation_round_trips_a_seeded_share_of_the_clips_through_h264() -> None:
    spec = ClipSpec(frames=4, size=48)
    plain = ClipBatches(TRAIN_SEEDS, 12, 12, spec, PRE, actor_grid=4)
    some = ClipBatches(TRAIN_SEEDS, 12, 12, spec, PRE, actor_grid=4, codec=CodecAugment(0.5))
    every = ClipBatches(TRAIN_SEEDS, 12, 12, spec, PRE, codec=CodecAugment(1.0, crf=(30, 30)))
    (clean,) = list(plain.batches(1))
    (mixed,) = list(some.batches(1))
    (again,) = list(some.batches(1))
    (coded,) = list(every.batches(1))
    assert torch.equal(mixed.inputs, again.inputs)  # the same clips, the same qualities
    assert torch.equal(mixed.labels, clean.labels) and torch.equal(coded.labels, clean.labels)
    # The codec moves no object: the actor targets are those of the clean clips.
    assert mixed.states is not None and clean.states is not None
    assert torch.equal(mixed.states, clean.states)

    changed = [not torch.equal(a, b) for a, b in zip(mixed.inputs, clean.inputs, strict=True)]
    assert 0 < sum(changed) < len(changed), changed
    # Every clip through the codec: changed, but by codec noise (a few grey levels), not more.
    grey_levels = (coded.inputs - clean.inputs).abs().mean(dim=(1, 2, 3, 4)) * 0.5 * 255
    assert bool((grey_levels > 0.5).all()) and bool((grey_levels < 12).all()), grey_levels


def test_codec_augmentation_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="probability"):
        CodecAugment(1.5)
    with pytest.raises(ValueError, match="crf"):
        CodecAugment(0.5, crf=(30, 60))


def test_frame_rate_augmentation_draws_a_seeded_rate_per_clip() -> None:
    spec = ClipSpec(frames=4, size=32)
    rates = FrameRateAugment(5.0, 20.0)
    plain = ClipBatches(TRAIN_SEEDS, 12, 12, spec, PRE, actor_grid=4)
    varied = ClipBatches(TRAIN_SEEDS, 12, 12, spec, PRE, actor_grid=4, rates=rates)
    (clean,) = list(plain.batches(1))
    (mixed,) = list(varied.batches(1))
    (again,) = list(varied.batches(1))
    assert torch.equal(mixed.inputs, again.inputs)  # the same clips at the same rates
    assert torch.equal(mixed.labels, clean.labels)  # an action at another rate is the same action
    # Each clip is the generator's clip of its seed at the rate drawn for it, frames and targets.
    drawn = rates.draw(np.random.default_rng([0, 0, 0, 2]), 12)
    order = plain.epoch_seeds(0)
    assert bool(((drawn >= 5.0) & (drawn <= 20.0)).all()) and drawn.std() > 1.0
    for i in (0, 5):
        clip = generate_clip(int(order[i]), spec=ClipSpec(frames=4, size=32, fps=float(drawn[i])))
        assert torch.equal(mixed.inputs[i], preprocess_frames(clip.frames, PRE))
        assert mixed.states is not None and clean.states is not None
    moved = [not torch.equal(a, b) for a, b in zip(mixed.states, clean.states, strict=True)]
    assert sum(moved) > 6, moved  # the actors moved as far as their rates make them per frame


def test_frame_rates_are_drawn_log_uniformly_from_a_valid_range() -> None:
    rates = FrameRateAugment(5.0, 20.0).draw(np.random.default_rng(0), 4000)
    assert rates.min() >= 5.0 and rates.max() <= 20.0
    # log-uniform: as many below the geometric middle (10 fps) as above it
    assert abs(float((rates < 10.0).mean()) - 0.5) < 0.03
    assert np.allclose(FrameRateAugment(10.0, 10.0).draw(np.random.default_rng(0), 3), 10.0)
    for low, high in ((0.0, 5.0), (20.0, 5.0)):
        with pytest.raises(ValueError, match="frame rates"):
            FrameRateAugment(low, high)


def test_a_varied_share_draws_that_share_of_the_clips_in_the_varied_scene() -> None:
    spec = ClipSpec(frames=4, size=32)
    plain = ClipBatches(TRAIN_SEEDS, 40, 40, spec, PRE)
    mixed = ClipBatches(TRAIN_SEEDS, 40, 40, spec, PRE, varied_share=0.5)
    (clean,) = list(plain.batches(1))
    (some,) = list(mixed.batches(1))
    (again,) = list(mixed.batches(1))
    assert torch.equal(some.inputs, again.inputs)  # the choice is seeded
    assert torch.equal(some.labels, clean.labels)  # a scene never changes the action
    order = plain.epoch_seeds(0)
    varied = []
    for i in range(40):
        if torch.equal(some.inputs[i], clean.inputs[i]):
            continue
        clip = generate_clip(int(order[i]), spec=replace(spec, scene="varied"))
        assert torch.equal(some.inputs[i], preprocess_frames(clip.frames, PRE))
        varied.append(i)
    assert 8 <= len(varied) <= 32, varied  # about half, and each the varied clip of its seed
    with pytest.raises(ValueError, match="varied_share"):
        ClipBatches(TRAIN_SEEDS, 4, 4, spec, PRE, varied_share=1.5)


def test_a_varied_share_can_be_drawn_in_the_fine_scene() -> None:
    spec = ClipSpec(frames=4, size=32)
    plain = ClipBatches(TRAIN_SEEDS, 24, 24, spec, PRE)
    fine = ClipBatches(TRAIN_SEEDS, 24, 24, spec, PRE, varied_share=1.0, varied_scene="fine")
    (batch,) = list(fine.batches(1))
    for i, seed in enumerate(plain.epoch_seeds(0)[:3]):
        clip = generate_clip(int(seed), spec=replace(spec, scene="fine"))
        assert torch.equal(batch.inputs[i], preprocess_frames(clip.frames, PRE))
    with pytest.raises(ValueError, match="varied_scene"):
        ClipBatches(TRAIN_SEEDS, 4, 4, spec, PRE, varied_share=0.5, varied_scene="classic")
