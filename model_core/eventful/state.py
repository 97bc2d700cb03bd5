"""The explicit per-session state of the eventful encoder and the streaming head.

Nothing lives inside modules: a ``SessionState`` holds the caches of ``S`` sessions, stacked on
dim 0, and is passed into every step and returned by it. A pool preallocates one for all of its
slots; a step works on the rows of the slots in its batch.

Per block (``N`` tokens, ``C`` channels, ``H`` heads, ``d = C / H``):

=============  ====================  ====================================================
field          shape                 what it holds
=============  ====================  ====================================================
``qkv_ref``    ``(S, N, C)``         reference of the qkv gate (``norm1`` output)
``qkv``        ``(S, N, 3C)``        qkv buffer: the last q, k, v of every token
``logits``     ``(S, H, N, N)``      scaled query-key product, rows and columns updated
``attn_ref``   ``(S, H, N, N)``      reference attention: column ``j`` as of ``v_j``'s update
``av``         ``(S, H, N, d)``      accumulator: always ``attn_ref @ v`` (v from ``qkv``)
``proj_ref``   ``(S, N, C)``         reference of the output-projection gate
``proj``       ``(S, N, C)``         output-projection buffer
``mlp_ref``    ``(S, N, C)``         reference of the MLP gate (``norm2`` output)
``mlp``        ``(S, N, C)``         MLP buffer
``cls_prev``   ``(S, 2, C)``         causal TokShift only (else ``(S, 0, C)``): the previous
                                     frame's CLS on the residual stream at the block's two
                                     shift points (before attention, before the MLP)
=============  ====================  ====================================================

The value reference of the attention-value accumulator needs no tensor of its own: it is
refreshed at exactly the rows where the qkv buffer is, so it always equals the buffer's v.

Per session: ``ring`` ``(S, T, C)``, the last ``T`` per-frame CLS features (frame ``f`` at
``f % T``), ``frames`` ``(S,)``, frames seen since the last reset (0 means fresh), and the
input gate's two tensors (``P`` patches of ``D = 3·p·p`` pixels): ``patch_ref`` ``(S, P, D)``,
each patch's pixels as of its last embedding, and ``patch_tokens`` ``(S, P, C)``, the patch
embeddings as of then (before the class token and the position embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class StateSpec:
    """Sizes of one session's state."""

    depth: int
    tokens: int
    dim: int
    heads: int
    window: int
    cls_shift: bool = False  # blocks shift CLS channels from the previous frame (causal TokShift)
    patch_dim: int = 0  # pixels per patch (3·p·p): the input gate's reference per patch

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-session shapes of one block's tensors."""
        n, c, h = self.tokens, self.dim, self.heads
        return {
            "qkv_ref": (n, c),
            "qkv": (n, 3 * c),
            "logits": (h, n, n),
            "attn_ref": (h, n, n),
            "av": (h, n, self.head_dim),
            "proj_ref": (n, c),
            "proj": (n, c),
            "mlp_ref": (n, c),
            "mlp": (n, c),
            "cls_prev": (2 if self.cls_shift else 0, c),
        }

    def elements_per_slot(self) -> int:
        per_layer = sum(_numel(s) for s in self.layer_shapes().values())
        patches = (self.tokens - 1) * (self.patch_dim + self.dim)  # the input gate's two tensors
        return self.depth * per_layer + self.window * self.dim + patches + 1

    def bytes_per_slot(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes one session occupies (the frame counter counted as int64)."""
        item = torch.empty((), dtype=dtype).element_size()
        return (self.elements_per_slot() - 1) * item + 8


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


@dataclass
class LayerState:
    """One block's caches for ``S`` sessions (see the module docstring)."""

    qkv_ref: Tensor
    qkv: Tensor
    logits: Tensor
    attn_ref: Tensor
    av: Tensor
    proj_ref: Tensor
    proj: Tensor
    mlp_ref: Tensor
    mlp: Tensor
    cls_prev: Tensor

    def map(self, fn: Callable[[Tensor], Tensor]) -> LayerState:
        return LayerState(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def tensors(self) -> list[Tensor]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass
class SessionState:
    """The whole state of ``S`` sessions: the encoder caches, the feature ring, frame counts."""

    layers: list[LayerState]
    ring: Tensor
    frames: Tensor
    patch_ref: Tensor
    patch_tokens: Tensor

    @property
    def sessions(self) -> int:
        return int(self.frames.shape[0])

    def map(self, fn: Callable[[Tensor], Tensor]) -> SessionState:
        return SessionState(
            [layer.map(fn) for layer in self.layers],
            fn(self.ring),
            fn(self.frames),
            fn(self.patch_ref),
            fn(self.patch_tokens),
        )

    def tensors(self) -> list[Tensor]:
        session = [self.ring, self.frames, self.patch_ref, self.patch_tokens]
        return [t for layer in self.layers for t in layer.tensors()] + session

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


def allocate_state(
    spec: StateSpec,
    sessions: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> SessionState:
    """Zeroed state for ``sessions`` fresh sessions."""

    def zeros(shape: tuple[int, ...]) -> Tensor:
        return torch.zeros((sessions, *shape), device=device, dtype=dtype)

    layers = [
        LayerState(**{name: zeros(shape) for name, shape in spec.layer_shapes().items()})
        for _ in range(spec.depth)
    ]
    ring = zeros((spec.window, spec.dim))
    frames = torch.zeros(sessions, device=device, dtype=torch.long)
    patches = spec.tokens - 1
    return SessionState(
        layers, ring, frames, zeros((patches, spec.patch_dim)), zeros((patches, spec.dim))
    )
