"""Token-selection policies: counts, thresholds, padding of mixed batches."""

from __future__ import annotations

import math

import pytest
import torch

from model_core.eventful import KEEP_ALL, BatchPlan, Threshold, TopFraction, TopR
from model_core.eventful.policy import fixed_count, select_tokens


def test_fixed_counts() -> None:
    assert fixed_count(TopR(5), 50) == 5
    assert fixed_count(TopR(500), 50) == 50
    assert fixed_count(TopFraction(0.25), 50) == 13
    assert fixed_count(TopFraction(0.001), 50) == 1
    assert fixed_count(KEEP_ALL, 50) == 50
    assert fixed_count(Threshold(0.1), 50) is None


@pytest.mark.parametrize(
    "bad",
    [
        lambda: TopR(0),
        lambda: TopFraction(0.0),
        lambda: Threshold(-1),
        lambda: Threshold((1.0, 2.0)),
        lambda: Threshold((1.0, -2.0, 3.0)),
        lambda: Threshold(math.nan),
    ],
)
def test_invalid_budgets_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


def test_fresh_sessions_and_keep_all_need_no_comparison() -> None:
    plan = BatchPlan.build([TopR(3), KEEP_ALL], [True, False], tokens=10)
    assert plan.all_full
    assert plan.gated == (False, False)
    plan = BatchPlan.build([TopR(3), KEEP_ALL], [False, False], tokens=10)
    assert not plan.all_full
    assert plan.gated == (True, False)


def test_top_r_batches_densely_with_the_largest_errors() -> None:
    norms = torch.tensor([[0.0, 5.0, 1.0, 3.0], [4.0, 0.0, 2.0, 1.0]])
    plan = BatchPlan.build([TopR(2), TopR(2)], [False, False], tokens=4)
    selection = select_tokens(norms, plan)
    assert selection.mask is None
    assert selection.counts == (2, 2)
    assert selection.index is not None
    assert [sorted(row) for row in selection.index.tolist()] == [[1, 3], [0, 2]]


def test_thresholds_pad_with_a_selected_index_and_mask_it() -> None:
    norms = torch.tensor([[0.0, 5.0, 1.0, 3.0], [0.1, 0.0, 0.2, 0.0]])
    plan = BatchPlan.build([Threshold(0.5), Threshold(0.5)], [False, False], tokens=4)
    selection = select_tokens(norms, plan)
    # Session 1 has nothing above its threshold: it still recomputes its largest error.
    assert selection.counts == (3, 1)
    assert selection.index is not None and selection.mask is not None
    assert selection.index.tolist()[0] == [1, 3, 2]
    assert selection.index.tolist()[1] == [2, 2, 2]
    assert selection.mask.tolist() == [[True, True, True], [True, False, False]]


def test_each_gate_applies_its_own_threshold() -> None:
    norms = torch.tensor([[0.0, 5.0, 1.0, 3.0], [0.1, 0.0, 2.5, 0.0]])
    per_gate = Threshold((0.5, 2.0, 4.0))  # qkv, proj, mlp
    assert per_gate.per_gate == (0.5, 2.0, 4.0) and Threshold(0.5).per_gate == (0.5,) * 3
    assert Threshold([0.5, 2.0, 4.0]) == per_gate  # a JSON list is taken as the tuple
    plan = BatchPlan.build([per_gate, Threshold(2.0)], [False, False], tokens=4)
    assert plan.thresholds.shape == (2, 3)
    counts = [select_tokens(norms, plan, gate).counts for gate in range(3)]
    assert counts == [(3, 1), (2, 1), (1, 1)]
    # The default gate is the first one (qkv).
    assert select_tokens(norms, plan).counts == counts[0]


def test_mixed_policies_in_one_batch() -> None:
    norms = torch.rand(3, 20, generator=torch.Generator().manual_seed(0))
    plan = BatchPlan.build([TopR(2), Threshold(math.inf), TopFraction(0.5)], [False] * 3, 20)
    selection = select_tokens(norms, plan)
    assert selection.counts == (2, 1, 10)
    assert selection.index is not None and selection.index.shape == (3, 10)


def test_all_tokens_above_threshold_is_a_full_selection() -> None:
    plan = BatchPlan.build([Threshold(0.0)], [False], tokens=4)
    assert select_tokens(torch.ones(1, 4), plan).full


def test_a_pinned_token_is_selected_whatever_its_error() -> None:
    # Token 0 (the class token) has the smallest error in both sessions.
    norms = torch.tensor([[0.0, 5.0, 1.0, 3.0], [0.0, 0.1, 0.2, 0.0]])
    plan = BatchPlan.build([TopR(2), Threshold(0.5)], [False, False], tokens=4, pinned=1)
    selection = select_tokens(norms, plan)
    assert selection.index is not None and selection.mask is not None
    # Top-r spends one of its r slots on it; a threshold adds it to what crossed the line.
    assert selection.counts == (2, 1)
    assert selection.index.tolist()[0] == [0, 1]
    assert selection.index.tolist()[1][0] == 0
    assert selection.mask.tolist() == [[True, True], [True, False]]
    # The caller's norms are left as they were.
    assert norms[0, 0] == 0.0
    unpinned = select_tokens(norms, BatchPlan.build([TopR(2)] * 2, [False, False], tokens=4))
    assert unpinned.index is not None and 0 not in unpinned.index.tolist()[0]


def test_pinning_more_tokens_than_a_frame_has_is_refused() -> None:
    with pytest.raises(ValueError, match="pinned"):
        BatchPlan.build([TopR(2)], [False], tokens=4, pinned=5)
