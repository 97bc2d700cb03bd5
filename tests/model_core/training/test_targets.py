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
from model_core.training.targets import (
    MOTION_FIELDS,
    MOTION_SCALE,
    POSITION_SCALE,
    RADIUS_CENTRE,
    RADIUS_SCALE,
    STATE_FIELDS,
    TURN_FIELDS,
    actor_masks,
    actor_motion,
    actor_patches,
    actor_states,
    actor_turn,
)

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
    # Positions centred on the frame and radii on a typical actor, both scaled to about [-1, 1].
    expected = [-0.25 * POSITION_SCALE, 0.25 * POSITION_SCALE, (0.1 - RADIUS_CENTRE) * RADIUS_SCALE]
    np.testing.assert_allclose(full[0], [*expected, 1.0, 0.0, 1.0], atol=1e-6)
    # The crop keeps the centre and scales distances from it by 1 / crop_pct.
    np.testing.assert_allclose(cropped[0, :2], full[0, :2] / 0.875, atol=1e-6)
    assert cropped[0, 2] == pytest.approx((0.1 / 0.875 - RADIUS_CENTRE) * RADIUS_SCALE)


def test_every_target_varies_on_the_scale_of_one() -> None:
    """A regression target with a tiny spread gives a squared error too weak to teach the
    backbone anything next to the cross-entropy (raw positions did exactly that)."""
    spec = ClipSpec(frames=8, size=64)
    clips = [generate_clip(seed, spec=spec) for seed in TRAIN_SEEDS[:66]]
    states = torch.from_numpy(np.stack([actor_states(c.track, _spec()) for c in clips]))
    spread = states.flatten(0, 1).std(dim=0)
    assert ((spread > 0.25) & (spread < 1.5)).all(), spread
    targets, _ = actor_motion(states)
    largest = targets.abs().flatten(0, 1).amax(dim=0)
    assert ((largest > 0.5) & (largest < 3.0)).all(), largest


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


def _track(*states: ActorState) -> ActorTrack:
    return ActorTrack.concat([ActorTrack.hold(s, 1) for s in states])


def _three_frames() -> torch.Tensor:
    """``(1, 3, 6)`` states: moved right, grown, turned 20 degrees across 180 and half faded
    in frame 1; moved up and hidden in frame 2."""
    track = _track(
        ActorState(x=0.30, y=0.5, radius=0.10, angle=170.0),
        ActorState(x=0.35, y=0.5, radius=0.12, angle=-170.0, opacity=0.5),
        ActorState(x=0.35, y=0.4, radius=0.12, angle=-170.0, opacity=0.0),
    )
    return torch.from_numpy(actor_states(track, _spec()))[None]


def test_motion_is_the_scaled_change_since_the_previous_frame() -> None:
    states = _three_frames()  # (1, 3, 6)
    targets, weights = actor_motion(states)
    assert targets.shape == weights.shape == (1, 2, len(MOTION_FIELDS))
    scale = torch.tensor(MOTION_SCALE)
    # Frame 1 against frame 0: right by 0.05, radius up, a 20-degree clockwise turn across
    # 180 degrees (a small change, not -340), half faded.
    change = [0.05 * POSITION_SCALE, 0.0, 0.02 * RADIUS_SCALE, float(np.deg2rad(20.0)), -0.5]
    expected = torch.tensor(change) * scale
    torch.testing.assert_close(targets[0, 0], expected, atol=1e-4, rtol=1e-4)
    # Position and angle changes count as much as the actor is visible in both frames.
    torch.testing.assert_close(weights[0, 0], torch.tensor([0.5, 0.5, 1.0, 0.5, 1.0]))
    torch.testing.assert_close(weights[0, 1], torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0]))


def test_played_backwards_the_motion_changes_sign() -> None:
    clip = generate_clip(TRAIN_SEEDS[3], spec=ClipSpec(frames=6, size=64))
    states = torch.from_numpy(actor_states(clip.track, _spec()))[None]
    forward, _ = actor_motion(states)
    backward, _ = actor_motion(states.flip(1))
    torch.testing.assert_close(backward, -forward.flip(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "causal"),
    [
        ("tokshift_vit_tiny_patch16_224", False),
        ("xvit_vit_tiny_patch16_224", False),
        ("factorized_vit_tiny_patch16_224", True),
    ],
)
def test_motion_probe_reads_each_frame_after_the_temporal_operator(
    make_tiny_model: MakeModel, name: str, causal: bool
) -> None:
    model = make_tiny_model(name=name, causal=causal).eval()
    cfg = model.config
    tokens = torch.randn(2, cfg.num_frames, cfg.tokens_per_frame, cfg.embed_dim)
    features = model.forward_frame_features(tokens)
    assert features.shape == (2, cfg.num_frames, cfg.embed_dim)
    if causal:
        # Frame t's features, and so its motion answer, see frames <= t only.
        changed = tokens.clone()
        changed[:, -1] += 1.0
        torch.testing.assert_close(model.forward_frame_features(changed)[:, :-1], features[:, :-1])
    probes = ActorProbes(cfg.embed_dim)
    states = torch.rand(2, cfg.num_frames, len(STATE_FIELDS))
    loss = probes.motion_loss(features, states)
    loss.backward()
    assert loss.item() > 0 and probes.motion.weight.grad is not None


def test_the_actor_patch_is_the_one_its_mask_is_centred_on() -> None:
    spec = _spec()
    for seed in range(6):
        clip = generate_clip(TRAIN_SEEDS[seed], spec=ClipSpec(frames=4))
        states = torch.from_numpy(actor_states(clip.track, spec))[None]  # (1, 4, 6)
        patches = actor_patches(states, 7)[0]
        for t in range(4):
            column = min(6, int(clip.track.x[t] * 7))
            row = min(6, int(clip.track.y[t] * 7))
            assert int(patches[t]) == row * 7 + column
    # A centre outside the input counts as the nearest edge patch.
    outside = torch.zeros(1, 2, 6)
    outside[0, 0, :2] = torch.tensor([-5.0, -5.0])
    outside[0, 1, :2] = torch.tensor([5.0, 0.0])
    assert actor_patches(outside, 7).tolist() == [[0, 3 * 7 + 6]]


def test_turn_targets_are_the_orientation_and_its_change_since_the_last_frame() -> None:
    states = _three_frames()  # (1, 3, 6)
    targets, weights = actor_turn(states)
    assert targets.shape == weights.shape == (1, 3, len(TURN_FIELDS))
    sin, cos = STATE_FIELDS.index("sin_angle"), STATE_FIELDS.index("cos_angle")
    torch.testing.assert_close(targets[0, :, :2], states[0, :, [sin, cos]])
    motion, _ = actor_motion(states)
    torch.testing.assert_close(targets[0, 1:, 2], motion[0, :, MOTION_FIELDS.index("dangle")])
    # The first frame has no turn to predict; a hidden actor has no orientation to read.
    assert float(targets[0, 0, 2]) == 0.0
    torch.testing.assert_close(
        weights[0], torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    )


def test_the_turn_probe_reads_the_token_of_the_actor_patch() -> None:
    probes = ActorProbes(4)
    states = torch.zeros(1, 2, len(STATE_FIELDS))
    states[..., STATE_FIELDS.index("opacity")] = 1.0
    states[0, :, 0] = torch.tensor([-0.4, 0.4]) * POSITION_SCALE  # left, then right half
    tokens = torch.randn(1, 2, 1 + 3 * 3, 4, requires_grad=True)
    probes.turn_loss(tokens, states).backward()
    assert tokens.grad is not None
    touched = tokens.grad.abs().sum(-1)[0] > 0  # (T, N)
    # Frame 0 reads patch (row 1, column 0), frame 1 patch (row 1, column 2); nothing else.
    assert touched.nonzero().tolist() == [[0, 1 + 3], [1, 1 + 5]]


@pytest.mark.parametrize("weight", ["actor_loss", "motion_loss", "turn_loss"])
def test_training_with_an_auxiliary_loss_runs_and_lowers_it(
    make_tiny_model: MakeModel, tiny_spec: ClipSpec, weight: str
) -> None:
    config = TrainConfig(
        clips=11, batch_size=11, epochs=6, lr=2e-3, warmup=0.0, label_smoothing=0.0,
        spec=tiny_spec, **{weight: 1.0},
    )  # fmt: skip
    assert config.needs_actor_targets
    result = train(make_tiny_model(), config)
    assert result.steps == 6
    assert sum(result.losses[-2:]) / 2 < result.losses[0]
    with pytest.raises(ValueError, match=weight):
        TrainConfig(**{weight: -1.0})
