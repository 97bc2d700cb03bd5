"""The demo models shipped inside the package: tiny video transformers trained on the procedural
motion dataset (``model_core.data``) at 112 px and 8 frames.

A bundle's name is its file name without ``.safetensors``: the family, ``tiny``, and the data it was
trained on (``motion112``). ``recipes/train_demo_bundles.py`` makes them; docs/MODELS.md lists
their held-out accuracy and the command that trained each.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_LIVE_MODEL",
    "DEMO_MODELS",
    "bundle_dir",
    "list_bundles",
]

BUNDLE_SUFFIX = ".safetensors"

# name -> (registry model, causal); the order is the order of the docs table.
DEMO_MODELS: dict[str, tuple[str, bool]] = {
    "tokshift_tiny_motion112": ("tokshift_vit_tiny_patch16_224", False),
    "factorized_causal_tiny_motion112": ("factorized_vit_tiny_patch16_224", True),
    "xvit_tiny_motion112": ("xvit_vit_tiny_patch16_224", False),
    "laps_tiny_motion112": ("laps_vit_tiny_patch16_224", False),
    "vast_tiny_motion112": ("vast_vit_tiny_patch16_224", False),
    "vit_avg_tiny_motion112": ("vit_avg_vit_tiny_patch16_224", False),
}
DEFAULT_CLIP_MODEL = "tokshift_tiny_motion112"
DEFAULT_LIVE_MODEL = "factorized_causal_tiny_motion112"


def bundle_dir() -> Path:
    """The directory of the shipped bundles."""
    return Path(__file__).resolve().parent / "bundles"


def list_bundles(directory: Path | str | None = None) -> dict[str, Path]:
    """Bundles in ``directory`` (the shipped ones by default), by name, sorted."""
    root = Path(directory) if directory is not None else bundle_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"no bundle directory at {root}")
    return {p.name[: -len(BUNDLE_SUFFIX)]: p for p in sorted(root.glob("*" + BUNDLE_SUFFIX))}
