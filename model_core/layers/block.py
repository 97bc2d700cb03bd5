"""The transformer block, with the temporal operator as a constructor argument."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from torch import Tensor, nn

from .attention import Attention
from .drop import DropPath
from .mlp import Mlp
from .shift import TemporalShift


class TokenMixer(Protocol):
    """What a block needs of its mixer: a module over ``(B, T, N, C)`` that counts its MACs."""

    def __call__(self, x: Tensor) -> Tensor: ...

    def macs(self, frames: int, tokens: int) -> Counter[str]: ...


class Block(nn.Module):
    """Pre-norm transformer block over ``(B, T, N, C)`` tokens (timm names ``norm1``, ``attn``,
    ``norm2``, ``mlp``).

    Args:
        mixer: the token mixer in place of ``attn``; per-frame ``Attention`` when None.
        residual_shift: TokShift: a shift applied to the residual stream itself, before the
            mixer and again before the MLP, so the shifted tokens also carry on in the residual.
        norm_eps: LayerNorm epsilon (1e-6 in timm ViTs).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        *,
        mixer: nn.Module | None = None,
        residual_shift: TemporalShift | None = None,
        norm_eps: float = 1e-6,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.residual_shift = residual_shift
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = mixer if mixer is not None else Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        if self.residual_shift is not None:
            x = self.residual_shift(x)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        if self.residual_shift is not None:
            x = self.residual_shift(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def macs(self, frames: int, tokens: int) -> Counter[str]:
        mixer: TokenMixer = self.attn  # type: ignore[assignment]
        return mixer.macs(frames, tokens) + self.mlp.macs(frames, tokens)
