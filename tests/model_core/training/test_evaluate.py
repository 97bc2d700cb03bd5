"""Held-out evaluation: the counts, the confusion matrix and the order-dependent pairs."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from model_core import VideoTransformer
from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, NUM_CLASSES, REVERSED_PAIRS, ClipSpec
from model_core.training import evaluate, report_from_predictions

MakeModel = Callable[..., VideoTransformer]


def index(name: str) -> int:
    return CLASS_NAMES.index(name)


def test_counts_from_predictions() -> None:
    left, right, still = index("move_left"), index("move_right"), index("stay_still")
    truth = [left, left, left, right, right, still]
    guess = [left, right, still, right, left, still]
    report = report_from_predictions(truth, guess)
    assert (report.clips, report.correct) == (6, 3)
    assert report.top1 == 0.5
    assert report.confusion[left][right] == 1 and report.confusion[right][left] == 1
    moves = report.pairs[0]
    assert (moves.first, moves.second) == REVERSED_PAIRS[0]
    counts = (moves.first_as_first, moves.first_as_second, moves.second_as_first)
    assert (*counts, moves.second_as_second, moves.other) == (1, 1, 1, 1, 1)
    assert moves.swapped == 2 and moves.swap_rate == 0.5 and moves.accuracy == 0.4
    assert math.isnan(report.pairs[1].swap_rate)  # no clips of that pair
    with pytest.raises(ValueError, match="class indices"):
        report_from_predictions([0], [NUM_CLASSES])


def test_a_model_that_knows_one_class_scores_one_in_eleven(make_tiny_model: MakeModel) -> None:
    # Its head ignores the features and always says move_left.
    model = make_tiny_model()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[index("move_left")] = 10.0
    report = evaluate(model, 44, offset=11, spec=ClipSpec(frames=4, size=32))

    assert report.seeds == (HELDOUT_SEEDS[11], HELDOUT_SEEDS[11] + 44)
    assert report.clips == 44 and report.top1 == 1 / NUM_CLASSES
    assert all(c.total == 4 for c in report.classes)
    confusion = np.array(report.confusion)
    assert confusion[:, index("move_left")].tolist() == [4] * NUM_CLASSES
    assert confusion.sum() == 44 and confusion.sum(axis=1).tolist() == [4] * NUM_CLASSES
    moves = report.pairs[0]
    assert (moves.first_as_first, moves.second_as_first, moves.other) == (4, 4, 0)
    assert moves.swap_rate == 0.5  # a model blind to order swaps half of a pair
    assert all(p.other == 8 and math.isnan(p.swap_rate) for p in report.pairs[1:])


def test_a_model_of_other_labels_is_refused(make_tiny_model: MakeModel) -> None:
    model = make_tiny_model(labels=[f"c{i}" for i in range(NUM_CLASSES)])
    with pytest.raises(ValueError, match="not the dataset's classes"):
        evaluate(model, 11)
