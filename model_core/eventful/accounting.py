"""Counting what an eventful step spends, as the Eventful paper counts it.

MAC = 1 operation. Counted: linear layers (on the rows they ran on), the query-key and
attention-value matmuls, the gate subtractions (``N·C`` for a gate that compared its input with
its reference), the delta subtractions of the attention-value accumulator and its additions.
Not counted: softmax, LayerNorm, GELU, gathers and scatters, norms of the errors, top-k.

A session is charged for the tokens it selected, never for padding that batching added; the
step's ``padded`` figure says how many token rows padding added.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from model_core.layers import Block
from model_core.models import VideoTransformer

from .policy import GATES  # the order of ``SessionCost.tokens`` rows


def dense_block_macs(tokens: int, dim: int, hidden: int) -> Counter[str]:
    """MACs of one dense ViT block over one frame, by ``model_core.flops`` part names."""
    return Counter(
        qkv=tokens * dim * 3 * dim,
        attention=2 * tokens * tokens * dim,
        proj=tokens * dim * dim,
        mlp=2 * tokens * dim * hidden,
    )


def dense_frame_macs(model: VideoTransformer, img_size: int | None = None) -> Counter[str]:
    """MACs of the spatial encoder (patch embedding and blocks) on one frame, by part.

    This is ``count_flops(model, num_frames=1)`` without the temporal head.
    """
    grid = (img_size or model.config.img_size) // model.config.patch_size
    tokens = 1 + grid * grid
    total: Counter[str] = Counter(patch_embed=model.patch_embed.macs(1, grid * grid))
    for block in model.blocks:
        mlp = _block(block).mlp
        total.update(dense_block_macs(tokens, mlp.fc1.in_features, mlp.fc1.out_features))
    return total


def _block(module: nn.Module) -> Block:
    if not isinstance(module, Block):
        raise TypeError(f"expected a Block, got {type(module).__name__}")
    return module


@dataclass
class SessionCost:
    """What one session spent in one step.

    Attributes:
        macs: by part (``patch_embed``, ``gate``, ``qkv``, ``attention``, ``accumulator``,
            ``proj``, ``mlp``, and ``head`` on steps that emitted labels).
        dense_macs: what the dense model would have spent on the same step, by part.
        tokens: per block, tokens recomputed by the ``GATES`` (qkv, proj, mlp).
        tokens_per_frame: ``N``, for the recompute fraction.
    """

    macs: Counter[str] = field(default_factory=Counter)
    dense_macs: Counter[str] = field(default_factory=Counter)
    tokens: list[tuple[int, int, int]] = field(default_factory=list)
    tokens_per_frame: int = 1

    @property
    def gmacs(self) -> float:
        return sum(self.macs.values()) / 1e9

    @property
    def dense_gmacs(self) -> float:
        return sum(self.dense_macs.values()) / 1e9

    @property
    def recompute_fraction(self) -> float:
        """Share of gate rows recomputed, over blocks and gates (1.0 for a dense step)."""
        if not self.tokens:
            return 0.0
        return sum(map(sum, self.tokens)) / (len(self.tokens) * 3 * self.tokens_per_frame)


class CostMeter:
    """Accumulates ``SessionCost`` for every session of one batched step."""

    def __init__(self, sessions: int, tokens: int) -> None:
        self.costs = [SessionCost(tokens_per_frame=tokens) for _ in range(sessions)]
        self.padded = 0
        self._row: list[list[int]] = [[] for _ in range(sessions)]

    def add(self, part: str, values: Sequence[int]) -> None:
        """Charges ``values[s]`` MACs of ``part`` to session ``s``."""
        for cost, value in zip(self.costs, values, strict=True):
            if value:
                cost.macs[part] += value

    def add_dense(self, parts: Counter[str]) -> None:
        for cost in self.costs:
            cost.dense_macs.update(parts)

    def add_tokens(self, counts: Sequence[int], width: int) -> None:
        """Records one gate's selected counts; ``width`` is the padded width it ran with."""
        for row, count in zip(self._row, counts, strict=True):
            row.append(count)
            self.padded += width - count
        if len(self._row[0]) == len(GATES):
            for cost, row in zip(self.costs, self._row, strict=True):
                cost.tokens.append((row[0], row[1], row[2]))
                row.clear()
