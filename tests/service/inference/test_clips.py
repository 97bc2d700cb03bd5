"""The clip classifier: the model's own preprocessing and forward, batched across clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_bundles import AVG_MODEL, CLIP_MODEL, LIVE_MODEL, clip_frames

from model_core.preprocess import preprocess_frames
from service.inference import ClipClassifier, ModelCatalog, UnknownModelError


def views_of(*seeds: int, size: int = 112) -> np.ndarray:
    """``(V, 8, size, size, 3)``: one generated clip per seed."""
    return np.stack([clip_frames(seed, size=size) for seed in seeds])


def direct_scores(catalog: ModelCatalog, name: str, views: np.ndarray) -> torch.Tensor:
    """Softmax averaged over views from a plain forward of the model."""
    entry = catalog.get(name)
    x = torch.stack([preprocess_frames(v, entry.config.preprocessing) for v in views])
    with torch.no_grad():
        return entry.model(x).softmax(-1).mean(0)


@pytest.mark.parametrize("name", [CLIP_MODEL, LIVE_MODEL, AVG_MODEL])
def test_scores_equal_a_direct_forward(catalog: ModelCatalog, name: str) -> None:
    views = views_of(1, 2)
    (answer,) = ClipClassifier(catalog).classify(name, [views], top_k=11)
    expected = direct_scores(catalog, name, views)
    labels = catalog.get(name).labels
    assert [label for label, _ in answer.labels] == [
        labels[i] for i in expected.argsort(descending=True).tolist()
    ]
    got = torch.tensor([score for _, score in answer.labels])
    torch.testing.assert_close(got, expected.sort(descending=True).values, atol=1e-6, rtol=1e-5)
    assert got.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert answer.model == name


def test_batching_clips_gives_the_scores_of_one_by_one(catalog: ModelCatalog) -> None:
    # Different view counts and frame sizes (each view is resized by the preprocessing).
    clips = [views_of(3), views_of(4, 5, 6, size=96), views_of(7, 8, size=128)]
    alone = [ClipClassifier(catalog).classify(CLIP_MODEL, [c], top_k=3)[0] for c in clips]
    for max_batch in (32, 2):  # all in one forward; in chunks that split clips
        together = ClipClassifier(catalog, max_batch=max_batch).classify(CLIP_MODEL, clips, 3)
        for got, expected in zip(together, alone, strict=True):
            assert [label for label, _ in got.labels] == [label for label, _ in expected.labels]
            np.testing.assert_allclose(
                [s for _, s in got.labels], [s for _, s in expected.labels], atol=1e-5
            )


def test_answer_reports_cost_per_clip(catalog: ModelCatalog) -> None:
    entry = catalog.get(CLIP_MODEL)
    one, three = ClipClassifier(catalog).classify(None, [views_of(1), views_of(1, 2, 3)], top_k=2)
    assert one.model == CLIP_MODEL  # the catalog's clip default
    assert (one.views, one.frames) == (1, 8)
    assert (three.views, three.frames) == (3, 24)
    assert one.gmacs == pytest.approx(entry.gmacs_per_clip)
    assert three.gmacs == pytest.approx(3 * entry.gmacs_per_clip)
    assert one.inference_ms > 0 and three.inference_ms == pytest.approx(3 * one.inference_ms)
    assert len(one.labels) == 2 and one.labels[0][1] >= one.labels[1][1]
    body = one.to_dict()
    assert body["labels"][0] == {"label": one.labels[0][0], "score": one.labels[0][1]}
    assert set(body) == {"model", "labels", "inference_ms", "gmacs", "frames", "views"}


def test_a_single_view_clip_and_a_large_top_k(catalog: ModelCatalog) -> None:
    frames = clip_frames(9)  # (T, H, W, 3): one view
    (answer,) = ClipClassifier(catalog).classify(AVG_MODEL, [frames], top_k=100)
    assert len(answer.labels) == 11 and answer.views == 1
    assert ClipClassifier(catalog).classify(AVG_MODEL, [], top_k=1) == []


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (np.zeros((1, 4, 112, 112, 3), np.uint8), "takes 8 frames per view, got 4"),
        (np.zeros((1, 8, 112, 112, 3), np.float32), "expected uint8"),
        (np.zeros((1, 8, 112, 112), np.uint8), "expected \\(views, frames"),
        (np.zeros((0, 8, 112, 112, 3), np.uint8), "expected \\(views, frames"),
    ],
)
def test_bad_clips_are_refused(catalog: ModelCatalog, clip: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipClassifier(catalog).classify(CLIP_MODEL, [views_of(1), clip])


def test_bad_model_or_top_k(catalog: ModelCatalog) -> None:
    classifier = ClipClassifier(catalog)
    with pytest.raises(UnknownModelError, match="known: "):
        classifier.classify("nope", [views_of(1)])
    with pytest.raises(ValueError, match="top_k"):
        classifier.classify(CLIP_MODEL, [views_of(1)], top_k=0)
    with pytest.raises(ValueError, match="max_batch"):
        ClipClassifier(catalog, max_batch=0)
