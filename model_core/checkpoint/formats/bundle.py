"""A vidrec bundle read by ``load_checkpoint``: its tensors already have vidrec names; what the
header adds is the architecture it was saved from, compared here with the target model's."""

from __future__ import annotations

from model_core.checkpoint.bundle import METADATA_KEY, parse_bundle_metadata
from model_core.config import ModelConfig

from .base import Converted, Layout, Source

_IGNORED_FIELDS = {"name"}  # a renamed copy of the same architecture is still a match
_MAX_VALUE_CHARS = 60


def _is_bundle(source: Source) -> bool:
    return METADATA_KEY in source.metadata


def _config_differences(saved: ModelConfig, target: ModelConfig) -> list[str]:
    old, new = saved.to_dict(), target.to_dict()
    diffs = []
    for name in old:
        if name in _IGNORED_FIELDS or old[name] == new.get(name):
            continue
        diffs.append(f"{name} {_short(old[name])} (bundle) vs {_short(new.get(name))} (model)")
    return diffs


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _convert(source: Source, config: ModelConfig | None) -> Converted:
    saved, _ = parse_bundle_metadata(source.metadata, source.path)
    converted = Converted(dict(source.state))
    if config is not None:
        diffs = _config_differences(saved, config)
        if diffs:
            converted.warnings.append(
                "the bundle was saved from another configuration: " + "; ".join(diffs)
            )
    return converted


BUNDLE = Layout(
    "vidrec-bundle",
    "vidrec bundle (safetensors with 'vidrec' JSON metadata: format, version, config, training)",
    _is_bundle,
    _convert,
)
