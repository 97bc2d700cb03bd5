"""Batches of generated clips for training and evaluation: which seeds, in which order, and how
they become model input.

Every batch is a pure function of ``(seed, epoch, batch index)``: the clip of a seed is fixed by
the generator, the order of an epoch by a numpy generator seeded with ``(seed, epoch)``, and the
augmentation of a batch by a torch generator seeded from all three. So the batches (and the
losses of a run) do not depend on how many threads or worker processes make them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import Tensor

from model_core.config import Preprocessing
from model_core.data import LOOK_RANGES, ClipSpec, generate_clip
from model_core.preprocess import preprocess_frames

from .augment import Augment, CodecAugment, FrameRateAugment, augment_batch
from .targets import actor_masks, actor_states


def preprocess_batch(frames: np.ndarray | Tensor, spec: Preprocessing) -> Tensor:
    """``preprocess_frames`` over a batch of clips, with identical results.

    Every step of the shared path (resize, crop, normalisation) acts on each frame alone, so
    running it once over the ``B·T`` frames of a batch gives each clip's own result.

    Args:
        frames: ``(B, T, H, W, 3)`` uint8 RGB frames.
        spec: the model's preprocessing (``model.config.preprocessing``).

    Returns:
        ``(B, T, 3, S, S)`` float32 model input.
    """
    clips = torch.as_tensor(frames)
    if clips.ndim != 5:
        raise ValueError(f"expected (B, T, H, W, 3) frames, got shape {tuple(clips.shape)}")
    b, t = clips.shape[:2]
    x = preprocess_frames(clips.flatten(0, 1), spec)  # (B·T, 3, S, S)
    return x.reshape(b, t, *x.shape[1:])


@dataclass(frozen=True)
class Batch:
    """One batch of model input.

    Attributes:
        inputs: ``(B, T, 3, S, S)`` preprocessed (and possibly augmented) frames.
        labels: ``(B,)`` int64 class indices.
        seeds: ``(B,)`` int64 generator seeds of the clips.
        epoch: The epoch the batch belongs to (0-based).
        index: The batch's position in its epoch.
        states: ``(B, T, 6)`` per-frame actor state (``targets.actor_states``), when asked for.
        masks: ``(B, T, P)`` per-patch actor masks (``targets.actor_masks``), when asked for.
    """

    inputs: Tensor
    labels: Tensor
    seeds: Tensor
    epoch: int
    index: int
    states: Tensor | None = None
    masks: Tensor | None = None

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory (DataLoader calls this), for asynchronous GPU copies."""
        return Batch(
            self.inputs.pin_memory(),
            self.labels.pin_memory(),
            self.seeds,
            self.epoch,
            self.index,
            None if self.states is None else self.states.pin_memory(),
            None if self.masks is None else self.masks.pin_memory(),
        )


_CODEC_STREAM = 1  # keeps the codec's draws apart from the augmentation's
_RATE_STREAM = 2  # and the frame rates' from both
_SCENE_STREAM = 3  # and the scene choices' from all three


class ClipBatches:
    """The batches of an epoch-based run over generated clips.

    An epoch is ``clips`` consecutive seeds of ``seeds`` starting at ``offset``, in an order
    shuffled per epoch; the last batch of an epoch may be smaller. With ``fresh`` each epoch
    takes the next ``clips`` seeds instead of the same ones again, so no clip is seen twice.

    Args:
        seeds: The seed range to draw from (``TRAIN_SEEDS`` or ``HELDOUT_SEEDS``).
        clips: Clips per epoch.
        batch_size: Clips per batch.
        spec: The clips' frames, size and frame rate.
        preprocessing: The model's preprocessing.
        seed: Seeds the order and the augmentation.
        offset: Index in ``seeds`` of the first clip.
        shuffle: Shuffle each epoch (off for evaluation).
        fresh: New clips in every epoch.
        augment: Order-preserving augmentation, or ``None``.
        codec: Round-trips some clips through H.264 before preprocessing, or ``None``.
        rates: Generates each clip at its own frame rate instead of ``spec.fps``, or ``None``.
        varied_share: Share of the clips drawn in the varied scene (the rest in ``spec.scene``);
            0 draws every clip in ``spec.scene``.
        varied_scene: Which scene that share is drawn in: ``"varied"`` or ``"fine"``.
        actor_grid: Patch grid side; when given, batches carry the actor's per-frame state and
            per-patch masks (auxiliary targets, see ``targets``). Needs ``augment`` without
            translation, which would move the actor away from its targets.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        clips: int,
        batch_size: int,
        spec: ClipSpec,
        preprocessing: Preprocessing,
        *,
        seed: int = 0,
        offset: int = 0,
        shuffle: bool = True,
        fresh: bool = False,
        augment: Augment | None = None,
        actor_grid: int | None = None,
        codec: CodecAugment | None = None,
        rates: FrameRateAugment | None = None,
        varied_share: float = 0.0,
        varied_scene: str = "varied",
    ) -> None:
        if not 0.0 <= varied_share <= 1.0:
            raise ValueError(f"varied_share must be in [0, 1], got {varied_share}")
        if varied_scene not in LOOK_RANGES:
            raise ValueError(
                f"varied_scene must be one of {tuple(LOOK_RANGES)}, got {varied_scene!r}"
            )
        if actor_grid is not None and augment is not None and augment.max_shift > 0:
            raise ValueError("actor targets need augmentation without translation (max_shift=0)")
        if clips < 1 or batch_size < 1:
            raise ValueError(f"clips and batch_size must be positive, got {clips}, {batch_size}")
        if offset < 0:
            raise ValueError(f"offset must be non-negative, got {offset}")
        if offset + clips > len(seeds):
            raise ValueError(f"{offset + clips} clips asked of a seed range of {len(seeds)}")
        self.seeds = seeds
        self.clips = clips
        self.batch_size = batch_size
        self.spec = spec
        self.preprocessing = preprocessing
        self.seed = seed
        self.offset = offset
        self.shuffle = shuffle
        self.fresh = fresh
        self.augment = augment
        self.actor_grid = actor_grid
        self.codec = codec
        self.rates = rates
        self.varied_share = varied_share
        self.varied_scene = varied_scene

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.clips // self.batch_size)

    def epoch_seeds(self, epoch: int) -> np.ndarray:
        """The generator seeds of one epoch, in the order they are visited."""
        start = self.offset + (epoch * self.clips if self.fresh else 0)
        if start + self.clips > len(self.seeds):
            raise ValueError(f"epoch {epoch} runs past the end of the seed range")
        chosen = np.asarray(self.seeds[start : start + self.clips], dtype=np.int64)
        if self.shuffle:
            chosen = np.random.default_rng([self.seed, epoch]).permutation(chosen)
        return chosen

    def plan_epoch(self, epoch: int) -> list[tuple[int, int, np.ndarray]]:
        """``(epoch, index, seeds)`` of every batch of one epoch."""
        order = self.epoch_seeds(epoch)
        starts = range(0, len(order), self.batch_size)
        return [(epoch, i, order[s : s + self.batch_size]) for i, s in enumerate(starts)]

    def plan(self, epochs: int | None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(epoch, index, seeds)`` of every batch of ``epochs`` epochs (forever if ``None``)."""
        epoch = 0
        while epochs is None or epoch < epochs:
            yield from self.plan_epoch(epoch)
            epoch += 1

    def make(self, epoch: int, index: int, seeds: np.ndarray) -> Batch:
        """Generates, preprocesses and augments one planned batch."""
        specs = [self.spec] * len(seeds)
        if self.rates is not None:
            rng = np.random.default_rng([self.seed, epoch, index, _RATE_STREAM])
            specs = [replace(self.spec, fps=float(f)) for f in self.rates.draw(rng, len(seeds))]
        if self.varied_share > 0:
            rng = np.random.default_rng([self.seed, epoch, index, _SCENE_STREAM])
            varied = rng.random(len(seeds)) < self.varied_share
            specs = [
                replace(s, scene=self.varied_scene) if v else s
                for s, v in zip(specs, varied, strict=True)
            ]
        clips = [generate_clip(int(s), spec=spec) for s, spec in zip(seeds, specs, strict=True)]
        frames = np.stack([clip.frames for clip in clips])
        if self.codec is not None:
            rng = np.random.default_rng([self.seed, epoch, index, _CODEC_STREAM])
            frames = np.stack([self.codec.apply(c.frames, c.spec.fps, rng) for c in clips])
        labels = np.array([clip.label for clip in clips], dtype=np.int64)
        inputs = preprocess_batch(frames, self.preprocessing)
        if self.augment is not None:
            generator = torch.Generator().manual_seed(
                int(np.random.default_rng([self.seed, epoch, index]).integers(2**62))
            )
            inputs = augment_batch(inputs, self.preprocessing, self.augment, generator)
        states = masks = None
        if self.actor_grid is not None:
            states = torch.from_numpy(
                np.stack([actor_states(c.track, self.preprocessing) for c in clips])
            )
            masks = torch.from_numpy(
                np.stack([actor_masks(c.track, self.preprocessing, self.actor_grid) for c in clips])
            )
        return Batch(
            inputs, torch.from_numpy(labels), torch.from_numpy(seeds), epoch, index, states, masks
        )

    def batches(
        self, epochs: int | None = 1, *, workers: int = 0, prefetch: int = 2
    ) -> Iterator[Batch]:
        """The batches of ``epochs`` epochs (forever if ``None``), made ahead of use.

        Args:
            epochs: Number of epochs, or ``None`` for an endless stream.
            workers: 0 makes batches on one background thread of this process (enough on a
                2-core machine, where the model needs the other core); ``n > 0`` makes them in
                ``n`` worker processes (for a GPU that trains faster than one core generates).
            prefetch: Batches made ahead per thread or worker.
        """
        if workers == 0:
            return _prefetch((partial(self.make, *plan) for plan in self.plan(epochs)), prefetch)
        return _worker_batches(self, epochs, workers, prefetch)


def _prefetch(tasks: Iterator[Callable[[], Batch]], depth: int) -> Iterator[Batch]:
    """Runs ``tasks`` in order on one background thread, at most ``depth`` results ahead.

    An error in the thread is raised in the consumer; closing the iterator stops the thread.
    """
    results: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for task in tasks:
                item = task()
                while not stop.is_set():
                    try:
                        results.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            results.put(("done", None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            results.put(("error", err))

    thread = threading.Thread(target=produce, name="vidrec-batches", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = results.get()
            if kind == "done":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        # Unblock a producer waiting on a full queue, then let it finish its current batch.
        while thread.is_alive():
            try:
                results.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


class _PlannedBatches(torch.utils.data.Dataset[Batch]):
    """A fixed list of planned batches, one item per batch, for DataLoader workers."""

    def __init__(self, source: ClipBatches, plans: list[tuple[int, int, np.ndarray]]) -> None:
        self.source = source
        self.plans = plans

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, item: int) -> Batch:
        return self.source.make(*self.plans[item])


def _one_thread(_: int) -> None:
    # Workers split the cores among themselves; each may use only one.
    torch.set_num_threads(1)


def _worker_batches(
    source: ClipBatches, epochs: int | None, workers: int, prefetch: int
) -> Iterator[Batch]:
    """Batches made by ``workers`` DataLoader processes, one epoch at a time."""
    epoch = 0
    while epochs is None or epoch < epochs:
        loader = torch.utils.data.DataLoader(
            _PlannedBatches(source, source.plan_epoch(epoch)),
            batch_size=None,
            num_workers=workers,
            prefetch_factor=prefetch,
            worker_init_fn=_one_thread,
            pin_memory=torch.cuda.is_available(),
        )
        yield from loader
        epoch += 1
