"""Auxiliary actor targets: geometry of the masks and states, batches that carry them, and a
training run that uses them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from model_core import VideoTransformer
from model_core.config import Preprocessing
from model_core.data import TRAIN_SEEDS, ActorState, ActorTrack, ClipSpec, generate_clip
from model_core.training import Augment, ClipBatches, TrainConfig, train
from model_core.training.loop import ActorProbes
from model_core.training.targets import STATE_FIELDS, actor_masks, actor_states

MakeModel = Callable[..., VideoTransformer]


def _spec(crop_pct: float = 1.0) -> Preprocessing:
    return Preprocessing(img_size=112, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=crop_pct)


def test_a_centred_actor_covers_the_centre_patches_only() -> None:
    track = ActorTrack.hold(ActorState(x=0.5, y=0.5, radius=0.06, angle=0.0), 3)
    masks = actor_masks(track, _spec(), grid=7).reshape(3, 7, 7)
    assert masks.dtype == np.float32
    assert masks[:, 3, 3].all()
    assert masks[:, 0, :].sum() == masks[:, :, 0].sum() == 0
    # Symmetric about the centre, like the disc.
    assert np.array_equal(masks, masks[:, ::-1, ::-1])


def test_a_moving_actor_moves_its_mask_and_an_invisible_one_has_none() -> None:
    left = ActorState(x=0.1, y=0.5, radius=0.05, angle=0.0)
    right = ActorState(x=0.9, y=0.5, radius=0.05, angle=0.0)
    gone = ActorState(x=0.5, y=0.5, radius=0.05, angle=0.0, opacity=0.1)
    track = ActorTrack.concat([ActorTrack.hold(s, 1) for s in (left, right, gone)])
    masks = actor_masks(track, _spec(), grid=7).reshape(3, 7, 7)
    assert masks[0, 3, 0] == 1 and masks[0, 3, 6] == 0
    assert masks[1, 3, 6] == 1 and masks[1, 3, 0] == 0
    assert masks[2].sum() == 0


def test_states_follow_the_centre_crop() -> None:
    track = ActorTrack.hold(ActorState(x=0.25, y=0.75, radius=0.1, angle=90.0), 2)
    full = actor_states(track, _spec(1.0))
    cropped = actor_states(track, _spec(0.875))
    assert full.shape == (2, len(STATE_FIELDS)) and full.dtype == np.float32
    np.testing.assert_allclose(full[0], [0.25, 0.75, 0.5, 1.0, 0.0, 1.0], atol=1e-6)
    # The crop keeps the centre and scales distances from it by 1 / crop_pct.
    np.testing.assert_allclose(cropped[0, :2], [0.5 - 0.25 / 0.875, 0.5 + 0.25 / 0.875], atol=1e-6)
    assert cropped[0, 2] == pytest.approx(full[0, 2] / 0.875)


def test_batches_carry_targets_matching_their_clips() -> None:
    spec = ClipSpec(frames=4, size=32)
    pre = Preprocessing(img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    batches = ClipBatches(TRAIN_SEEDS, 4, 4, spec, pre, actor_grid=2, shuffle=False)
    batch = next(iter(batches.batches(1)))
    assert batch.states is not None and batch.masks is not None
    assert batch.states.shape == (4, 4, 6) and batch.masks.shape == (4, 4, 4)
    clip = generate_clip(int(batch.seeds[1]), spec=spec)
    np.testing.assert_array_equal(batch.states[1].numpy(), actor_states(clip.track, pre))
    plain = next(iter(ClipBatches(TRAIN_SEEDS, 4, 4, spec, pre, shuffle=False).batches(1)))
    assert plain.states is None and plain.masks is None
    torch.testing.assert_close(plain.inputs, batch.inputs)


def test_translation_augmentation_is_refused_with_targets() -> None:
    pre = _spec()
    with pytest.raises(ValueError, match="max_shift=0"):
        ClipBatches(TRAIN_SEEDS, 4, 4, ClipSpec(), pre, actor_grid=7, augment=Augment())
    ClipBatches(TRAIN_SEEDS, 4, 4, ClipSpec(), pre, actor_grid=7, augment=Augment(max_shift=0))


def test_probe_loss_is_lowest_for_the_right_answer() -> None:
    probes = ActorProbes(4)
    tokens = torch.randn(2, 3, 5, 4)
    masks = (torch.rand(2, 3, 4) > 0.5).float()
    states = torch.rand(2, 3, 6)
    with torch.no_grad():
        probes.mask.weight.zero_()
        probes.state.weight.zero_()
        probes.mask.bias.fill_(0.0)
        probes.state.bias.copy_(states[0, 0])
    base = probes.loss(tokens, states, masks)
    states_same = states.clone()
    states_same[:] = states[0, 0]
    assert probes.loss(tokens, states_same, masks) < base


def test_training_with_actor_loss_runs_and_lowers_it(
    make_tiny_model: MakeModel, tiny_spec: ClipSpec
) -> None:
    config = TrainConfig(
        clips=11, batch_size=11, epochs=6, lr=2e-3, warmup=0.0, label_smoothing=0.0,
        actor_loss=1.0, spec=tiny_spec,
    )  # fmt: skip
    result = train(make_tiny_model(), config)
    assert result.steps == 6
    assert sum(result.losses[-2:]) / 2 < result.losses[0]
    with pytest.raises(ValueError, match="actor_loss"):
        TrainConfig(actor_loss=-1.0)
