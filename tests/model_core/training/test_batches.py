"""Which seeds a run visits and how they become model input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from model_core.config import Preprocessing
from model_core.data import HELDOUT_SEEDS, TRAIN_SEEDS, ClipSpec, generate_batch
from model_core.preprocess import preprocess_frames
from model_core.training import Augment, ClipBatches, augment_batch, preprocess_batch

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
