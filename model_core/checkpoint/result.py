"""What ``load_checkpoint`` did: the layout it found and every key it could not place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LoadResult:
    """The report of one load.

    Attributes:
        format: the layout detected, e.g. ``"timm-vit"``, ``"tokshift-v1"``, ``"vidrec-bundle"``.
        path: the file read.
        container: the key the state dict was found under (``"state_dict"``, ``"model_state"``...),
            None when the file holds the state dict itself.
        loaded_keys: model keys that received a tensor from the checkpoint.
        missing_keys: model keys the checkpoint has nothing for; they keep their current values.
        unexpected_keys: checkpoint keys (after conversion to vidrec names; names the conversion
            did not know keep their source spelling) that the model does not have.
        mismatched_keys: ``key -> (checkpoint shape, model shape)`` for keys present on both
            sides with different shapes; not loaded.
        ignored_keys: checkpoint keys (source names) that the layout knows are no part of the
            model, dropped on purpose rather than unexpected (the X-ViT release's unused
            ``new_fc``).
        resized: ``key -> (checkpoint shape, model shape)`` for tensors resampled to fit (the
            position embedding of another patch grid).
        conversions: what was done to the checkpoint's tensors on the way, in words.
        warnings: things that load but may not be what was meant (weights trained for another
            family or channel layout).
    """

    format: str
    path: Path
    container: str | None = None
    loaded_keys: tuple[str, ...] = ()
    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    mismatched_keys: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    ignored_keys: tuple[str, ...] = ()
    resized: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    conversions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every model tensor came from the checkpoint and every checkpoint tensor was used."""
        return not (self.missing_keys or self.unexpected_keys or self.mismatched_keys)

    def summary(self) -> str:
        """One line for logs."""
        total = len(self.loaded_keys) + len(self.missing_keys) + len(self.mismatched_keys)
        parts = [f"{self.format}: loaded {len(self.loaded_keys)}/{total} model tensors"]
        if self.missing_keys:
            parts.append(f"{len(self.missing_keys)} missing")
        if self.unexpected_keys:
            parts.append(f"{len(self.unexpected_keys)} unexpected")
        if self.mismatched_keys:
            parts.append(f"{len(self.mismatched_keys)} of another shape")
        if self.ignored_keys:
            parts.append(f"{len(self.ignored_keys)} ignored ({', '.join(self.ignored_keys)})")
        parts.extend(f"{key} resized {src} -> {dst}" for key, (src, dst) in self.resized.items())
        parts.extend(f"warning: {w}" for w in self.warnings)
        return "; ".join(parts)
