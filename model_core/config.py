"""The complete, JSON-serialisable description of a video model: architecture, labels and the
preprocessing it expects. A bundle stores exactly this, so ``create_model`` can rebuild it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IMAGENET_INCEPTION_MEAN = (0.5, 0.5, 0.5)
IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 frames become model input: resize the short side to ``img_size / crop_pct``,
    centre-crop ``img_size``, scale to [0, 1], normalise with ``mean`` and ``std``."""

    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875

    @property
    def resize_size(self) -> int:
        return max(self.img_size, round(self.img_size / self.crop_pct))


@dataclass(frozen=True)
class ModelConfig:
    """Everything ``VideoTransformer`` is built from.

    ``family`` picks the temporal operator and head (see ``model_core.models.families``);
    ``options`` holds family-specific settings (``shift_div``, ``levels``, ``head_depth``...).
    """

    family: str
    name: str = ""
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_frames: int = 8
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_classes: int = 400
    labels: tuple[str, ...] | None = None
    causal: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_INCEPTION_MEAN
    std: tuple[float, float, float] = IMAGENET_INCEPTION_STD
    crop_pct: float = 0.875
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
            if len(self.labels) != self.num_classes:
                raise ValueError(
                    f"{len(self.labels)} labels given for num_classes={self.num_classes}"
                )
        for key in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, key))
            if len(value) != self.in_chans:
                raise ValueError(f"{key} needs {self.in_chans} values, got {len(value)}")
            object.__setattr__(self, key, value)
        object.__setattr__(self, "options", dict(self.options))
        if self.num_frames < 1 or self.num_classes < 1 or self.depth < 1:
            raise ValueError("num_frames, num_classes and depth must be positive")

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.labels or tuple(f"class_{i}" for i in range(self.num_classes))

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return 1 + self.grid_size**2

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.img_size, self.mean, self.std, self.crop_pct)

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with ``overrides``; unknown names are an error that lists the valid ones.

        Giving ``labels`` without ``num_classes`` sets ``num_classes`` to match.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown model argument(s) {unknown}; valid: {sorted(names)}")
        if overrides.get("labels") is not None and "num_classes" not in overrides:
            overrides["num_classes"] = len(overrides["labels"])
        if "options" in overrides:
            overrides["options"] = {**self.options, **overrides["options"]}
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model config field(s) {unknown}")
        return cls(**data)
