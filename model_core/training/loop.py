"""The training loop: AdamW, cosine schedule with warm-up, label smoothing, gradient clipping,
on clips generated on the fly."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_core.data import TRAIN_SEEDS, ClipSpec
from model_core.models import VideoTransformer

from .augment import Augment, CodecAugment, FrameRateAugment
from .batches import ClipBatches
from .optim import cosine_with_warmup, param_groups
from .targets import (
    MOTION_FIELDS,
    STATE_FIELDS,
    TURN_FIELDS,
    actor_motion,
    actor_patches,
    actor_turn,
)

FINAL_LOSS_STEPS = 20  # the reported final loss averages this many last steps


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        clips: Training clips per epoch, the seeds ``TRAIN_SEEDS[offset : offset + clips]``.
        epochs: Passes over them.
        batch_size: Clips per optimiser step.
        lr: Peak learning rate.
        weight_decay: AdamW decay of the weight matrices (biases, norms, embeddings: none).
        warmup: Fraction of the steps over which the learning rate rises linearly.
        min_lr_ratio: Learning rate at the end of the cosine, relative to the peak.
        label_smoothing: Cross-entropy label smoothing.
        grad_clip: Largest global gradient norm, or ``None``.
        augment: Order-preserving augmentation, or ``None``.
        codec: H.264 round trips of a share of the clips, or ``None``.
        rates: Each clip at its own frame rate from a range, or ``None`` (all at ``spec.fps``).
        varied_share: Share of the clips drawn in the varied scene, the rest in ``spec.scene``
            (mixing keeps what the classic scene taught while the varied one widens it).
        varied_scene: The scene of that share: ``"varied"`` or ``"fine"`` (smaller actors and
            markers).
        fresh: Every epoch takes new seeds instead of the same ones again.
        seed: Seeds the order of the clips and the augmentation (initialise the model's weights
            with ``torch.manual_seed`` before building it).
        offset: Index in ``TRAIN_SEEDS`` of the first clip.
        workers: Batch-making processes; 0 makes them on one background thread.
        amp: bfloat16 autocast (CUDA only).
        actor_loss: Weight of the auxiliary actor supervision (``targets``): probe heads on the
            final tokens predict which patches cover the actor and, from each frame's CLS
            token, its state. 0 turns it off. The probes are dropped after training.
        motion_loss: Weight of the auxiliary motion supervision: a probe on the head's per-frame
            features (``forward_frame_features``, after the temporal operator) predicts how the
            actor's state changed since the previous frame (``targets.actor_motion``). 0 turns
            it off; it uses the same generator ground truth as ``actor_loss``.
        turn_loss: Weight of the auxiliary turn supervision: a probe on the final token of the
            patch that holds the actor's centre predicts, in every frame, the actor's orientation
            and its turn since the previous frame (``targets.actor_turn``). 0 turns it off.
        spec: The generated clips.
    """

    clips: int = 2200
    epochs: int = 1
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup: float = 0.1
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    augment: Augment | None = None
    codec: CodecAugment | None = None
    rates: FrameRateAugment | None = None
    varied_share: float = 0.0
    varied_scene: str = "varied"
    fresh: bool = False
    seed: int = 0
    offset: int = 0
    workers: int = 0
    amp: bool = False
    actor_loss: float = 0.0
    motion_loss: float = 0.0
    turn_loss: float = 0.0
    spec: ClipSpec = field(default_factory=ClipSpec)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if not 0 <= self.warmup <= 1:
            raise ValueError(f"warmup is a fraction of the steps, got {self.warmup}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.actor_loss < 0:
            raise ValueError(f"actor_loss must be non-negative, got {self.actor_loss}")
        if self.motion_loss < 0:
            raise ValueError(f"motion_loss must be non-negative, got {self.motion_loss}")
        if self.turn_loss < 0:
            raise ValueError(f"turn_loss must be non-negative, got {self.turn_loss}")

    @property
    def needs_actor_targets(self) -> bool:
        """Whether batches must carry the generator's per-frame actor ground truth."""
        return self.actor_loss > 0 or self.motion_loss > 0 or self.turn_loss > 0

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.clips // self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup * self.total_steps)

    def train_seeds(self) -> range:
        """Every training seed the run uses."""
        used = self.clips * (self.epochs if self.fresh else 1)
        return TRAIN_SEEDS[self.offset : self.offset + used]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a bundle's training metadata."""
        return dataclasses.asdict(self)

    def batches(self, model: VideoTransformer) -> ClipBatches:
        """The run's training batches, preprocessed for ``model``."""
        return ClipBatches(
            TRAIN_SEEDS,
            self.clips,
            self.batch_size,
            self.spec,
            model.config.preprocessing,
            seed=self.seed,
            offset=self.offset,
            fresh=self.fresh,
            augment=self.augment,
            codec=self.codec,
            rates=self.rates,
            varied_share=self.varied_share,
            varied_scene=self.varied_scene,
            actor_grid=model.patch_embed.grid_size if self.needs_actor_targets else None,
        )


class ActorProbes(nn.Module):
    """Training-only heads for the auxiliary actor targets (see ``targets``).

    A linear probe per patch token scores "this patch covers the actor"; a linear probe on each
    frame's CLS token regresses the actor's state. Position and angle errors count only where
    the actor is visible.
    """

    MASK_POS_WEIGHT = 5.0  # the actor covers a few of the 49 patches; balance the two classes

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mask = nn.Linear(dim, 1)
        self.state = nn.Linear(dim, len(STATE_FIELDS))
        self.motion = nn.Linear(dim, len(MOTION_FIELDS))
        self.turn = nn.Linear(dim, len(TURN_FIELDS))

    def loss(self, tokens: Tensor, states: Tensor, masks: Tensor) -> Tensor:
        """``tokens`` ``(B, T, N, C)`` final tokens, CLS first; targets from a ``Batch``."""
        mask_logits = self.mask(tokens[:, :, 1:]).squeeze(-1)  # (B, T, P)
        pos_weight = torch.tensor(self.MASK_POS_WEIGHT, device=tokens.device)
        mask_loss = F.binary_cross_entropy_with_logits(mask_logits, masks, pos_weight=pos_weight)
        error = (self.state(tokens[:, :, 0]) - states) ** 2  # (B, T, 6)
        visible = states[..., -1:]
        state_loss = (error[..., :-1] * visible).mean() + error[..., -1].mean()
        return mask_loss + state_loss

    def motion_loss(self, frame_features: Tensor, states: Tensor) -> Tensor:
        """``frame_features`` ``(B, T, C)`` from ``forward_frame_features``; frame ``t`` predicts
        the change from ``t - 1`` to ``t`` (causal models see both)."""
        targets, weights = actor_motion(states)  # (B, T - 1, 5)
        error = (self.motion(frame_features[:, 1:]) - targets) ** 2
        return (error * weights).mean()

    def turn_loss(self, tokens: Tensor, states: Tensor) -> Tensor:
        """``tokens`` ``(B, T, N, C)`` final tokens, CLS first, on a square patch grid; the token
        of the patch under the actor's centre predicts ``targets.actor_turn``."""
        batch, frames, count, dim = tokens.shape
        grid = math.isqrt(count - 1)
        index = 1 + actor_patches(states, grid)  # (B, T), past the CLS token
        centre = tokens.gather(2, index[..., None, None].expand(batch, frames, 1, dim))
        targets, weights = actor_turn(states)  # (B, T, 3)
        error = (self.turn(centre[:, :, 0]) - targets) ** 2
        return (error * weights).mean()


@dataclass(frozen=True)
class StepInfo:
    """What a progress callback is told after every step (``step`` counts from 1)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float


@dataclass(frozen=True)
class TrainResult:
    """What a run did.

    Attributes:
        steps: Optimiser steps taken.
        clips_seen: Clips passed through the model.
        losses: The loss of every step.
        epoch_losses: The mean loss of every epoch.
        final_loss: The mean loss of the last steps (up to ``FINAL_LOSS_STEPS``).
        seconds: Wall time of the loop.
    """

    steps: int
    clips_seen: int
    losses: tuple[float, ...]
    epoch_losses: tuple[float, ...]
    final_loss: float
    seconds: float


def resolve_device(name: str | None = None) -> torch.device:
    """``"cuda"`` when available and ``name`` is ``None`` or ``"auto"``, else ``name``.

    Raises:
        ValueError: CUDA asked for but not available.
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return device


def train(
    model: VideoTransformer,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    progress: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Trains ``model`` in place on generated clips.

    Args:
        model: The model; it is moved to ``device`` and left in train mode there.
        config: The run.
        device: Where to train.
        progress: Called after every step.

    Returns:
        What the run did.

    Raises:
        FloatingPointError: The loss stopped being finite (lower the learning rate).
    """
    device = torch.device(device)
    model.to(device).train()
    probes = ActorProbes(model.config.embed_dim).to(device) if config.needs_actor_targets else None
    groups = param_groups(model, config.weight_decay)
    if probes is not None:
        groups += param_groups(probes, config.weight_decay)
    optimizer = torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=(0.9, 0.999),
        fused=device.type == "cuda",
    )
    schedule = cosine_with_warmup(
        optimizer, config.total_steps, config.warmup_steps, config.min_lr_ratio
    )
    amp = config.amp and device.type == "cuda"
    losses: list[float] = []
    epoch_sums = [0.0] * config.epochs
    epoch_counts = [0] * config.epochs
    clips_seen = 0
    start = time.perf_counter()
    batches = config.batches(model).batches(config.epochs, workers=config.workers)
    for batch in batches:
        inputs = batch.inputs.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            tokens = model.forward_features(inputs)  # (B, T, N, C)
            logits = model.forward_head(tokens)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        if probes is not None:
            assert batch.states is not None and batch.masks is not None
            states = batch.states.to(device)
            if config.actor_loss > 0:
                loss = loss + config.actor_loss * probes.loss(
                    tokens.float(), states, batch.masks.to(device)
                )
            if config.motion_loss > 0:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    frame_features = model.forward_frame_features(tokens)
                loss = loss + config.motion_loss * probes.motion_loss(
                    frame_features.float(), states
                )
            if config.turn_loss > 0:
                loss = loss + config.turn_loss * probes.turn_loss(tokens.float(), states)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for group in groups for p in group["params"]], config.grad_clip
            )
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()

        value = loss.item()  # one sync per step; the progress bar needs it anyway
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {len(losses) + 1}")
        losses.append(value)
        epoch_sums[batch.epoch] += value * len(labels)
        epoch_counts[batch.epoch] += len(labels)
        clips_seen += len(labels)
        if progress is not None:
            progress(StepInfo(len(losses), config.total_steps, batch.epoch, value, lr))
    seconds = time.perf_counter() - start
    tail = losses[-FINAL_LOSS_STEPS:]
    return TrainResult(
        steps=len(losses),
        clips_seen=clips_seen,
        losses=tuple(losses),
        epoch_losses=tuple(s / max(c, 1) for s, c in zip(epoch_sums, epoch_counts, strict=True)),
        final_loss=sum(tail) / len(tail),
        seconds=seconds,
    )
