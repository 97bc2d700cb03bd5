"""AdamW with timm's weight-decay exclusions and a cosine schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

# Embeddings are not decayed (timm's ``no_weight_decay``): shrinking them towards zero only
# erases position and time information.
NO_DECAY_NAMES = ("pos_embed", "cls_token", "temporal_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: matrices decayed; biases, norms and embeddings not."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over ``warmup_steps``, then a half cosine down to
    ``min_ratio`` times the peak at ``total_steps``.

    Call ``step()`` after every optimiser step.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"bad schedule: {warmup_steps} warm-up steps of {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        progress = min(progress, 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
