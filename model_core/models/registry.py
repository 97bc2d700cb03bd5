"""The model registry, in timm's style: names like ``tokshift_vit_base_patch16_224`` map to a
``ModelConfig``; ``create_model(name, **overrides)`` builds one."""

from __future__ import annotations

import fnmatch
from typing import Any

from model_core.config import ModelConfig

from .families import FAMILIES
from .video_transformer import VideoTransformer

# timm's ViT widths: (embed_dim, depth, num_heads)
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}

_REGISTRY: dict[str, ModelConfig] = {}


def register_config(config: ModelConfig) -> ModelConfig:
    """Adds a named configuration; the name must be new."""
    if not config.name:
        raise ValueError("a registered config needs a name")
    if config.name in _REGISTRY:
        raise ValueError(f"model {config.name!r} is already registered")
    _REGISTRY[config.name] = config
    return config


def _register_defaults() -> None:
    for family in FAMILIES:
        for size, (dim, depth, heads) in VIT_SIZES.items():
            register_config(
                ModelConfig(
                    family=family,
                    name=f"{family}_vit_{size}_patch16_224",
                    embed_dim=dim,
                    depth=depth,
                    num_heads=heads,
                )
            )


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern``, optionally of one ``family``."""
    return sorted(
        name
        for name, cfg in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern) and (family is None or cfg.family == family)
    )


def get_config(name: str, **overrides: Any) -> ModelConfig:
    try:
        base = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; see list_models()") from None
    return base.replace(**overrides) if overrides else base


def create_model(name: str, **overrides: Any) -> VideoTransformer:
    """Builds registered model ``name``; ``overrides`` replace fields of its ``ModelConfig``
    (``num_frames=16``, ``img_size=112``, ``labels=[...]``, ``causal=True``,
    ``options={"shift_div": 8}``...)."""
    return VideoTransformer(get_config(name, **overrides))


_register_defaults()
