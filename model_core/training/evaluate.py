"""Evaluation on held-out generated clips: top-1, per-class accuracy, the confusion matrix and
how often each order-dependent pair is mistaken for its partner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, REVERSED_PAIRS, ClipSpec
from model_core.models import VideoTransformer

from .batches import ClipBatches


@dataclass(frozen=True)
class ClassResult:
    """One class's row of the report."""

    name: str
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass(frozen=True)
class PairResult:
    """How one order-dependent pair ``(first, second)`` fared.

    Attributes:
        first: The class whose clips play ``second``'s plan forwards (``move_left`` ...).
        second: Its partner.
        first_as_first: Clips of ``first`` called ``first``.
        first_as_second: Clips of ``first`` called ``second``.
        second_as_first: Clips of ``second`` called ``first``.
        second_as_second: Clips of ``second`` called ``second``.
        other: Clips of either called a class outside the pair.
    """

    first: str
    second: str
    first_as_first: int
    first_as_second: int
    second_as_first: int
    second_as_second: int
    other: int

    @property
    def total(self) -> int:
        return (
            self.first_as_first
            + self.first_as_second
            + self.second_as_first
            + self.second_as_second
            + self.other
        )

    @property
    def swapped(self) -> int:
        """Clips called their partner: the mistake only frame order can prevent."""
        return self.first_as_second + self.second_as_first

    @property
    def swap_rate(self) -> float:
        """``swapped`` over the clips that were called one of the two (about 0.5 for a model
        blind to frame order, 0 for one that reads it)."""
        within = self.total - self.other
        return self.swapped / within if within else float("nan")

    @property
    def accuracy(self) -> float:
        """Top-1 over the clips of both classes."""
        correct = self.first_as_first + self.second_as_second
        return correct / self.total if self.total else float("nan")


@dataclass(frozen=True)
class EvalReport:
    """The result of ``evaluate``.

    Attributes:
        labels: The class names, in index order.
        confusion: ``confusion[i][j]`` clips of class ``i`` predicted as ``j`` (rows: truth).
        classes: Per-class totals and hits.
        pairs: One entry per ``REVERSED_PAIRS`` pair.
        seeds: The generator seeds evaluated, as ``(start, stop)``.
        spec: The generated clips.
    """

    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    classes: tuple[ClassResult, ...]
    pairs: tuple[PairResult, ...]
    seeds: tuple[int, int] | None = None
    spec: ClipSpec | None = None

    @property
    def clips(self) -> int:
        return sum(c.total for c in self.classes)

    @property
    def correct(self) -> int:
        return sum(c.correct for c in self.classes)

    @property
    def top1(self) -> float:
        return self.correct / self.clips if self.clips else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every count, and the rates computed from them."""
        seeds = None if self.seeds is None else {"start": self.seeds[0], "stop": self.seeds[1]}
        return {
            "clips": self.clips,
            "correct": self.correct,
            "top1": self.top1,
            "seeds": seeds,
            "spec": None if self.spec is None else asdict(self.spec),
            "labels": list(self.labels),
            "per_class": [
                {"name": c.name, "total": c.total, "correct": c.correct, "accuracy": c.accuracy}
                for c in self.classes
            ],
            "confusion": [list(row) for row in self.confusion],
            "pairs": [
                {
                    **asdict(p),
                    "total": p.total,
                    "swapped": p.swapped,
                    "swap_rate": p.swap_rate,
                    "accuracy": p.accuracy,
                }
                for p in self.pairs
            ],
        }


def report_from_predictions(
    targets: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    labels: Sequence[str] = CLASS_NAMES,
    pairs: Sequence[tuple[str, str]] = REVERSED_PAIRS,
    *,
    seeds: tuple[int, int] | None = None,
    spec: ClipSpec | None = None,
) -> EvalReport:
    """Builds the report from true and predicted class indices."""
    k = len(labels)
    truth = np.asarray(targets, dtype=np.int64)
    guess = np.asarray(predictions, dtype=np.int64)
    if truth.shape != guess.shape or truth.ndim != 1:
        raise ValueError("targets and predictions must be 1-D and of equal length")
    if truth.size and (min(truth.min(), guess.min()) < 0 or max(truth.max(), guess.max()) >= k):
        raise ValueError(f"class indices must be in [0, {k})")
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, guess), 1)
    classes = tuple(
        ClassResult(name, int(confusion[i].sum()), int(confusion[i, i]))
        for i, name in enumerate(labels)
    )
    pair_results = []
    for first, second in pairs:
        a, b = labels.index(first), labels.index(second)
        rows = int(confusion[a].sum() + confusion[b].sum())
        inside = confusion[np.ix_([a, b], [a, b])]
        pair_results.append(
            PairResult(
                first,
                second,
                int(inside[0, 0]),
                int(inside[0, 1]),
                int(inside[1, 0]),
                int(inside[1, 1]),
                rows - int(inside.sum()),
            )
        )
    return EvalReport(
        labels=tuple(labels),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        classes=classes,
        pairs=tuple(pair_results),
        seeds=seeds,
        spec=spec,
    )


@torch.inference_mode()
def predict(
    model: VideoTransformer,
    batches: ClipBatches,
    *,
    device: torch.device | str = "cpu",
    workers: int = 0,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted class indices of one epoch of ``batches``, in seed order."""
    device = torch.device(device)
    model.to(device).eval()
    targets, predictions = [], []
    for batch in batches.batches(1, workers=workers):
        inputs = batch.inputs.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(inputs)
        targets.append(batch.labels.numpy())
        predictions.append(logits.argmax(dim=-1).cpu().numpy())
    return np.concatenate(targets), np.concatenate(predictions)


def evaluate(
    model: VideoTransformer,
    clips: int = 220,
    *,
    offset: int = 0,
    spec: ClipSpec | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    amp: bool = False,
) -> EvalReport:
    """Scores ``model`` on the held-out clips ``HELDOUT_SEEDS[offset : offset + clips]``.

    A multiple of ``NUM_CLASSES`` clips from an offset that is one too gives every class the
    same number of clips.

    Args:
        model: A model whose labels are ``CLASS_NAMES``.
        clips: How many clips.
        offset: Index in ``HELDOUT_SEEDS`` of the first.
        spec: The clips (default: the model's frame count and image size at 10 fps).
        batch_size: Clips per forward pass.
        device: Where to run the model.
        workers: Batch-making processes; 0 makes them on one background thread.
        amp: bfloat16 autocast (CUDA only).

    Raises:
        ValueError: The model was not made for the generated classes.
    """
    labels = model.config.label_names
    if tuple(labels) != CLASS_NAMES:
        raise ValueError(
            f"the model's labels {list(labels)[:4]}... are not the dataset's classes "
            f"{list(CLASS_NAMES)[:4]}...; it was not trained on model_core.data"
        )
    spec = spec or ClipSpec(frames=model.config.num_frames, size=model.config.img_size)
    batches = ClipBatches(
        HELDOUT_SEEDS,
        clips,
        batch_size,
        spec,
        model.config.preprocessing,
        offset=offset,
        shuffle=False,
    )
    amp = amp and torch.device(device).type == "cuda"
    targets, predictions = predict(model, batches, device=device, workers=workers, amp=amp)
    start = HELDOUT_SEEDS[offset]
    return report_from_predictions(
        targets, predictions, labels, seeds=(start, start + clips), spec=spec
    )
