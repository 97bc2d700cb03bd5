"""The temporal operators do what the papers' code does, on tensors small enough to read."""

from __future__ import annotations

import pytest
import torch

from model_core.layers import (
    AffineShiftMixer,
    Attention,
    LeapPairGrouping,
    ShiftSegment,
    TemporalShift,
    resample_pos_embed,
    sincos_2d,
)


def frames_tensor(b: int = 1, t: int = 4, n: int = 3, c: int = 8) -> torch.Tensor:
    # value = frame index + 1, so a moved value shows where it came from
    return (torch.arange(t, dtype=torch.float32) + 1).view(1, t, 1, 1).expand(b, t, n, c).clone()


def test_fold_shift_moves_first_quarter_back_and_second_quarter_forward() -> None:
    x = frames_tensor(c=8)
    out = TemporalShift.fold(8, 4)(x)
    # channels [0, 2) read t+1, [2, 4) read t-1, zeros past the edges, [4, 8) stay
    assert out[0, :, 0, 0].tolist() == [2, 3, 4, 0]
    assert out[0, :, 0, 2].tolist() == [0, 1, 2, 3]
    assert out[0, :, 0, 5].tolist() == [1, 2, 3, 4]


def test_cls_only_shift_leaves_patch_tokens() -> None:
    x = frames_tensor(c=8)
    out = TemporalShift.fold(8, 4, cls_only=True)(x)
    assert out[0, :, 0, 0].tolist() == [2, 3, 4, 0]
    torch.testing.assert_close(out[:, :, 1:], x[:, :, 1:])


def test_causal_shift_drops_the_future_read() -> None:
    out = TemporalShift.fold(8, 4, causal=True)(frames_tensor(c=8))
    assert out[0, :, 0, 0].tolist() == [1, 2, 3, 4]  # future slot keeps the current frame
    assert out[0, :, 0, 2].tolist() == [0, 1, 2, 3]


def test_grouped_shift_repeats_the_pattern_in_every_head() -> None:
    x = frames_tensor(c=16)
    out = TemporalShift.fold(16, 4, groups=2)(x)  # 2 heads of 8 channels
    for head in range(2):
        assert out[0, :, 0, head * 8].tolist() == [2, 3, 4, 0]
        assert out[0, :, 0, head * 8 + 2].tolist() == [0, 1, 2, 3]
        assert out[0, :, 0, head * 8 + 4].tolist() == [1, 2, 3, 4]


def test_overlapping_segments_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlapping"):
        TemporalShift(8, [ShiftSegment(0, 4, 1), ShiftSegment(2, 6, -1)])


@pytest.mark.parametrize(("level", "pairs"), [(1, [(0, 4), (1, 5)]), (3, [(0, 1), (2, 3)])])
def test_leap_pairs_join_frames_a_leap_apart(level: int, pairs: list[tuple[int, int]]) -> None:
    grouping = LeapPairGrouping(level)
    x = frames_tensor(t=8, n=2, c=1)
    grouped = grouping.group(x)  # (B·T/2, 2N, C)
    assert grouped.shape == (4, 4, 1)
    members = {tuple(int(v) - 1 for v in g[:, 0].unique().tolist()) for g in grouped}
    for pair in pairs:
        assert pair in members
    torch.testing.assert_close(grouping.ungroup(grouped, 8), x)


def test_joint_attention_mixes_frames_per_frame_attention_does_not() -> None:
    from model_core.layers import JointGrouping

    torch.manual_seed(0)
    per_frame = Attention(8, 2)
    joint = Attention(8, 2, grouping=JointGrouping())
    joint.load_state_dict(per_frame.state_dict())
    x = torch.randn(1, 3, 4, 8)
    y = x.clone()
    y[:, 2] = torch.randn(4, 8)
    torch.testing.assert_close(per_frame(x)[:, :2], per_frame(y)[:, :2])
    assert not torch.allclose(joint(x)[:, :2], joint(y)[:, :2])


def test_xvit_kv_shift_changes_keys_and_values_only() -> None:
    torch.manual_seed(0)
    attn = Attention(8, 2, kv_shift=TemporalShift.fold(8, 8))
    x = torch.randn(1, 3, 4, 8)
    y = x.clone()
    y[:, 2] = torch.randn(4, 8)
    # frame 0 reads only frames 0 and 1 through keys and values
    torch.testing.assert_close(attn(x)[:, 0], attn(y)[:, 0])
    assert not torch.allclose(attn(x)[:, 1], attn(y)[:, 1])


def test_affine_shift_reads_spatial_and_temporal_neighbours() -> None:
    torch.manual_seed(0)
    mixer = AffineShiftMixer(16, grid_size=3)
    x = torch.randn(1, 3, 10, 16)  # 3 frames of CLS + 3x3 patches
    base = mixer(x)
    poked = x.clone()
    poked[:, 1, 1 + 4] += 1.0  # the centre patch of frame 1
    diff = (mixer(poked) - base).abs().sum(dim=-1)[0]  # (T, N)
    changed = {(t, n) for t in range(3) for n in range(10) if diff[t, n] > 1e-6}
    centre, up, down, left, right = 5, 2, 8, 4, 6  # token indices (1 + row * 3 + col)
    assert {(1, centre), (1, up), (1, down), (1, left), (1, right)} <= changed
    assert {(0, centre), (2, centre), (1, 0)} <= changed  # t-1, t+1 and the CLS mean
    assert (1, 1) not in changed and (0, up) not in changed  # diagonal / other frame's row


def test_pos_embed_resample_keeps_cls_and_grid_shape() -> None:
    pos = torch.randn(1, 1 + 14 * 14, 8)
    out = resample_pos_embed(pos, 7)
    assert out.shape == (1, 50, 8)
    torch.testing.assert_close(out[:, 0], pos[:, 0])
    assert resample_pos_embed(pos, 14) is pos


def test_sincos_grid_codes_column_and_row_apart() -> None:
    table = sincos_2d(7, 192)  # (49, 192), raster order
    assert table.shape == (49, 192)
    column, row = table[:, :96], table[:, 96:]
    # Patches in one column share the column half and differ in the row half, and back.
    assert torch.equal(column[0], column[7]) and not torch.equal(row[0], row[7])
    assert torch.equal(row[0], row[1]) and not torch.equal(column[0], column[1])
    # Every patch has its own code, and the lowest frequency is sin/cos of the index itself.
    assert len({tuple(r.tolist()) for r in table}) == 49
    assert torch.allclose(table[3, 0], torch.tensor(3.0).sin())
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(7, 190)
