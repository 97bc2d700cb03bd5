"""The transformer MLP (timm names ``fc1``, ``fc2``)."""

from __future__ import annotations

from collections import Counter

from torch import Tensor, nn


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def macs(self, frames: int, tokens: int) -> Counter[str]:
        return Counter(mlp=frames * tokens * 2 * self.fc1.in_features * self.fc1.out_features)
