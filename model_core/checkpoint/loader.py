"""``load_checkpoint``: read, detect the layout, convert to vidrec names, fit, load."""

from __future__ import annotations

import logging
import os

from torch import nn

from model_core.models import VideoTransformer

from .adapt import fit_to_model
from .apply import apply_state_dict
from .formats import Source, detect_layout, strip_wrapper_prefixes
from .reader import read_checkpoint
from .result import LoadResult

_logger = logging.getLogger(__name__)


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], *, strict: bool = True
) -> LoadResult:
    """Loads the weights at ``path`` into ``model`` and says what it found.

    Reads ``.safetensors`` and PyTorch pickles (``.pth``, ``.pt``, ``.bin``..., with
    ``weights_only=True``), unwraps training containers (``state_dict``, ``model``,
    ``model_state``, ``module``) and ``module.`` / ``model.`` key prefixes, detects the layout
    (a vidrec bundle, a timm ViT, a vidrec state dict, the TokShift v1 and v2 releases, the
    LAPS release, the X-ViT release), converts it to vidrec names (dropping, as
    ``ignored_keys``, what a release saves but never uses), resamples ``pos_embed`` to the
    model's patch grid, initialises VAST mixers from image-ViT attention (see ``adapt``), and loads.

    Args:
        model: usually a ``VideoTransformer``; any module with timm ViT names works, without
            the family checks.
        path: the checkpoint file.
        strict: when True, any model key the checkpoint lacks, any checkpoint key the model
            lacks and any shape mismatch raise, and nothing is loaded. When False the tensors
            that fit are loaded and the rest is reported in the result (a new head, say, or
            the parameters a family adds to an image ViT).

    Returns:
        What was loaded, what was not, what was converted or resized, and warnings (weights
        trained for another family or channel layout).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is corrupt, of no known layout, or (strict) does not fit.
    """
    raw = read_checkpoint(path)
    state, stripped = strip_wrapper_prefixes(raw.state)
    source = Source(raw.path, state, raw.metadata, raw.extras)
    layout = detect_layout(source)
    config = model.config if isinstance(model, VideoTransformer) else None
    converted = layout.convert(source, config)
    model_state = model.state_dict()
    fitted = fit_to_model(converted.state, model_state)
    match = apply_state_dict(
        model,
        fitted.state,
        strict=strict,
        source=f"{raw.path} ({layout.name})",
        model_state=model_state,
    )
    result = LoadResult(
        format=layout.name,
        path=raw.path,
        container=raw.container,
        loaded_keys=match.loaded,
        missing_keys=match.missing,
        unexpected_keys=match.unexpected,
        mismatched_keys=match.mismatched,
        ignored_keys=tuple(converted.ignored),
        resized=fitted.resized,
        conversions=(
            *(f"removed prefix {prefix!r}" for prefix in stripped),
            *converted.conversions,
            *fitted.conversions,
        ),
        warnings=tuple(converted.warnings),
    )
    _logger.info("loaded %s: %s", raw.path, result.summary())
    for warning in result.warnings:
        _logger.warning("%s: %s", raw.path, warning)
    return result
