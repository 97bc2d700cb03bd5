"""What a checkpoint layout is: a test on the keys and a conversion to vidrec names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from model_core.config import ModelConfig

# Prefixes that wrappers (DistributedDataParallel, EMA or Lightning modules) put on every key.
WRAPPER_PREFIXES = ("module.", "model.")


@dataclass(frozen=True)
class Source:
    """A checkpoint's tensors with wrapper prefixes removed, its safetensors metadata, and the
    plain entries its training containers held beside the tensors (``RawCheckpoint.extras``)."""

    path: Path
    state: dict[str, Tensor]
    metadata: Mapping[str, str] = field(default_factory=dict)
    extras: Mapping[str, str | int | float | bool] = field(default_factory=dict)


@dataclass
class Converted:
    """Tensors under vidrec names; keys no rule knew keep their source names (and so come out
    as unexpected), which is what lets an error message point at them. ``ignored`` names the
    source keys a layout knows to be no part of the model and dropped on purpose."""

    state: dict[str, Tensor]
    conversions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Layout:
    """One checkpoint layout.

    Attributes:
        name: what ``LoadResult.format`` reports.
        description: one line for error messages and docs.
        matches: whether a source's keys (or metadata) are of this layout.
        convert: renames a matching source into vidrec names; it may look at the target
            model's config (None for a model that is not a ``VideoTransformer``) to warn.
    """

    name: str
    description: str
    matches: Callable[[Source], bool]
    convert: Callable[[Source, ModelConfig | None], Converted]


Rule = tuple[re.Pattern[str], str]


def rules(*pairs: tuple[str, str]) -> list[Rule]:
    """Compiles ``(regex, replacement)`` pairs; a regex must match a whole key."""
    return [(re.compile(pattern), replacement) for pattern, replacement in pairs]


def rename(state: Mapping[str, Tensor], table: Sequence[Rule]) -> dict[str, Tensor]:
    """Renames every key by the first rule that matches it; the others pass unchanged."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in table:
            match = pattern.fullmatch(key)
            if match:
                key = match.expand(replacement)
                break
        out[key] = value
    return out


def strip_wrapper_prefixes(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Removes ``module.`` / ``model.`` while every key carries it (as timm does)."""
    stripped: list[str] = []
    while state:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state, stripped
        state = {key[len(prefix) :]: value for key, value in state.items()}
        stripped.append(prefix)
    return state, stripped


def has_prefix(source: Source, prefix: str) -> bool:
    return any(key.startswith(prefix) for key in source.state)


def family_warnings(
    config: ModelConfig | None, layout: str, family: str, **options: object
) -> list[str]:
    """Warns when weights trained as ``family`` with ``options`` go into another setting."""
    if config is None:
        return []
    if config.family != family:
        return [
            f"{layout} weights were trained for the {family!r} family; this model is "
            f"{config.family!r} (the backbone loads, its temporal behaviour differs)"
        ]
    return [
        f"{layout} weights were trained with {name}={value!r}; this model has "
        f"{name}={config.options.get(name)!r}"
        for name, value in options.items()
        if config.options.get(name) != value
    ]
