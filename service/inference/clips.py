"""Classifying decoded clips: every view of every clip of one model in one batched forward.

A clip arrives as its sampled views ``(V, T, H, W, 3)`` uint8 (``DecodedClip.views``); each view
goes through the model's own preprocessing (``model_core.preprocess_frames``), the views of all
clips are stacked into one batch (split into chunks of at most ``max_batch`` views), and a clip's
scores are the softmax averaged over its views.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from model_core.preprocess import preprocess_frames

from .catalog import ModelCatalog, ModelEntry


@dataclass(frozen=True)
class ClipAnswer:
    """The labels of one clip and what they cost.

    Attributes:
        model: the model's name.
        labels: the ``top_k`` labels with their scores (softmax averaged over views), best first.
        inference_ms: this clip's share of the batch's wall time (preprocessing and forward),
            in proportion to its views.
        gmacs: GMACs spent on the clip: the model's per-view cost times the views.
        frames: frames the model saw (views times frames per view).
        views: temporal clips times spatial crops.
    """

    model: str
    labels: list[tuple[str, float]]
    inference_ms: float
    gmacs: float
    frames: int
    views: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``labels`` as ``[{"label", "score"}]``."""
        return {
            "model": self.model,
            "labels": [{"label": label, "score": score} for label, score in self.labels],
            "inference_ms": self.inference_ms,
            "gmacs": self.gmacs,
            "frames": self.frames,
            "views": self.views,
        }


class ClipClassifier:
    """Classifies clips with the models of a catalog.

    Args:
        catalog: the loaded models.
        max_batch: most views in one forward; more are run in chunks of this size.
    """

    def __init__(self, catalog: ModelCatalog, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be positive, got {max_batch}")
        self.catalog = catalog
        self.max_batch = max_batch

    def classify(
        self,
        model_name: str | None,
        clips: Sequence[np.ndarray],
        top_k: int = 5,
    ) -> list[ClipAnswer]:
        """Labels for each clip, in order.

        Args:
            model_name: a model of the catalog; None for its clip default.
            clips: per clip, ``(V, T, H, W, 3)`` uint8 views (``(T, H, W, 3)`` is one view) with
                ``T`` the model's frames. Clips may differ in size and in views.
            top_k: labels per answer (at most the model's classes).

        Raises:
            UnknownModelError: no such model.
            ValueError: a clip of the wrong shape, type or length, or ``top_k < 1``.
        """
        entry = self.catalog.resolve(model_name, "clip")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if not clips:
            return []
        views = [_views(clip, entry, i) for i, clip in enumerate(clips)]
        counts = [len(v) for v in views]
        start = time.perf_counter()
        probs = self.probabilities(entry, [view for clip in views for view in clip])
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        total = sum(counts)
        answers = []
        offset = 0
        for count in counts:
            answers.append(
                answer_from_views(
                    entry, probs[offset : offset + count], top_k, elapsed_ms * count / total
                )
            )
            offset += count
        return answers

    def views(self, clip: np.ndarray, entry: ModelEntry) -> list[np.ndarray]:
        """The views of one clip, checked against the model (see :meth:`classify`).

        Raises:
            ValueError: a clip of the wrong shape, type or length.
        """
        return _views(clip, entry, 0)

    @torch.no_grad()
    def probabilities(self, entry: ModelEntry, views: list[np.ndarray]) -> torch.Tensor:
        """Softmax ``(views, classes)`` of checked views (:meth:`views`) on the CPU, in float32,
        in forwards of at most ``max_batch`` views. A caller that must stay responsive (the
        worker, between live steps) runs a clip's views a few at a time and answers with
        :func:`answer_from_views`."""
        spec = entry.config.preprocessing
        out = []
        for first in range(0, len(views), self.max_batch):
            chunk = views[first : first + self.max_batch]
            batch = torch.stack([preprocess_frames(v, spec) for v in chunk])  # (B, T, 3, S, S)
            logits = entry.model(batch.to(entry.device, entry.dtype))  # the model's own type
            out.append(logits.float().softmax(dim=-1).cpu())
        return torch.cat(out)


def answer_from_views(
    entry: ModelEntry, probs: torch.Tensor, top_k: int, inference_ms: float
) -> ClipAnswer:
    """A clip's answer from the softmax of its views ``(views, classes)``: their mean's top
    labels.

    Raises:
        ValueError: ``top_k < 1`` or no views.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    count = len(probs)
    if count == 0:
        raise ValueError("a clip's answer needs at least one view")
    scores, index = probs.mean(dim=0).topk(min(top_k, entry.config.num_classes))
    pairs = zip(index.tolist(), scores.tolist(), strict=True)
    return ClipAnswer(
        model=entry.name,
        labels=[(entry.labels[i], float(p)) for i, p in pairs],
        inference_ms=inference_ms,
        gmacs=entry.gmacs_per_clip * count,
        frames=count * entry.frames,
        views=count,
    )


def _views(clip: np.ndarray, entry: ModelEntry, position: int) -> list[np.ndarray]:
    """The views of one clip, checked against the model."""
    array = np.asarray(clip)
    if array.ndim == 4:
        array = array[None]
    if array.ndim != 5 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(
            f"clip {position}: expected (views, frames, height, width, 3) RGB frames, "
            f"got shape {tuple(array.shape)}"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"clip {position}: expected uint8 frames, got {array.dtype}")
    if array.shape[1] != entry.frames:
        raise ValueError(
            f"clip {position}: model {entry.name!r} takes {entry.frames} frames per view, "
            f"got {array.shape[1]}"
        )
    return list(array)
