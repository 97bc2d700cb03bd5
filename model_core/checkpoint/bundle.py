"""vidrec's bundle: one ``.safetensors`` file that is a whole model.

The tensors are the model's state dict under vidrec names. The safetensors header's
``__metadata__`` (string to string) holds one key, ``"vidrec"``, whose value is JSON::

    {"format": "vidrec-bundle", "version": 1,
     "config": ModelConfig.to_dict(),   # architecture, arguments, labels, preprocessing
     "training": {...} or null}         # free-form provenance (data set, epochs, metrics)

so ``load_bundle`` rebuilds the model from the file alone, and ``read_bundle_config`` reads
the architecture without touching a tensor.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from model_core.config import ModelConfig
from model_core.models import VideoTransformer
from model_core.models.families import get_family

from .apply import apply_state_dict
from .errors import CheckpointError
from .reader import read_safetensors, read_safetensors_metadata

BUNDLE_FORMAT = "vidrec-bundle"
BUNDLE_VERSION = 1
METADATA_KEY = "vidrec"
# Plain weights (not a bundle: no architecture) may carry how they were made under this key, so
# that a bundle trained from them keeps the record (``read_training_record``).
WEIGHTS_RECORD_KEY = "vidrec.training"


def save_bundle(
    model: VideoTransformer,
    path: str | os.PathLike[str],
    training: Mapping[str, Any] | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Writes ``model`` and its config to one safetensors file; returns its path.

    The file is written beside ``path`` and renamed into place, so a reader never sees half a
    bundle.

    Args:
        model: the model to store; its ``config`` is what ``load_bundle`` will rebuild.
        path: where to write (``.safetensors`` by convention).
        training: JSON-serialisable facts about how the weights were made.
        dtype: store floating-point tensors in this type (``torch.float16`` halves the file,
            which keeps the shipped demo bundles under 10 MB); ``load_bundle`` builds float32
            either way.

    Raises:
        TypeError: ``training`` is not JSON-serialisable.
    """
    tensors = _standalone_tensors(model.state_dict())
    if dtype is not None:
        tensors = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
    return _write(Path(path), tensors, model.config.to_dict(), training)


def update_bundle_training(
    path: str | os.PathLike[str], updates: Mapping[str, Any]
) -> dict[str, Any]:
    """Merges ``updates`` into a bundle's training facts, in place; returns the new facts.

    For facts measured after training (a recommended live budget, say). The tensors are written
    back as they were stored (names, dtypes, values), and the file is replaced atomically.

    Raises:
        CheckpointError: not a readable vidrec bundle.
        TypeError: ``updates`` is not JSON-serialisable.
    """
    path = Path(path)
    state, metadata = read_safetensors(path)
    config, training = parse_bundle_metadata(metadata, path)
    merged = {**(training or {}), **updates}
    _write(path, _standalone_tensors(state), config.to_dict(), merged)
    return merged


def _write(
    path: Path,
    tensors: dict[str, Tensor],
    config: dict[str, Any],
    training: Mapping[str, Any] | None,
) -> Path:
    """Writes a bundle beside ``path`` and renames it into place."""
    header = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "config": config,
        "training": dict(training) if training is not None else None,
    }
    try:
        metadata = {METADATA_KEY: json.dumps(header, sort_keys=True)}
    except (TypeError, ValueError) as err:
        raise TypeError(f"bundle metadata must be JSON-serialisable: {err}") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=metadata)
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide the model from a service user
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _standalone_tensors(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CPU, contiguous tensors that own their memory.

    safetensors refuses tensors that share storage (tied weights) or view part of a larger
    one; such tensors are copied, so every name is stored and a strict load finds all of them.
    """
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        owns_storage = (
            tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and storage.nbytes() == tensor.numel() * tensor.element_size()
        )
        if not owns_storage or storage.data_ptr() in seen:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def parse_bundle_metadata(
    metadata: Mapping[str, str], path: Path
) -> tuple[ModelConfig, dict[str, Any] | None]:
    """The config and training facts of a bundle's header.

    Raises:
        CheckpointError: no vidrec metadata, a newer version, or a config this vidrec cannot
            build.
    """
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(
            f"{path} is not a vidrec bundle (no {METADATA_KEY!r} key in its safetensors "
            "metadata); load plain weights into a model with load_checkpoint(model, path)"
        )
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: bundle metadata is not valid JSON: {err}") from err
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{path}: metadata {METADATA_KEY!r} is not a {BUNDLE_FORMAT}")
    version = header.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise CheckpointError(
            f"{path}: bundle version {version!r}; this vidrec reads up to {BUNDLE_VERSION}"
        )
    try:
        config = _readout_of_its_time(ModelConfig.from_dict(header["config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bundle config cannot be built: {err}") from err
    training = header.get("training")
    return config, training if isinstance(training, dict) else None


def _readout_of_its_time(config: ModelConfig) -> ModelConfig:
    """A bundle stores its family's options with the defaults filled in, so one that names no
    readout although its family now defaults to one (VAST's ``patch_max``, since 2026-12-04)
    was saved before: its head read the CLS token, and is rebuilt so."""
    defaults = get_family(config.family).default_options or {}
    if "readout" in defaults and "readout" not in config.options:
        return config.replace(options={"readout": "cls"})
    return config


def training_chain(training: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A bundle's training records, first stage first: each run trained ``--init`` from another
    bundle keeps that bundle's record under ``init.training``."""
    chain: list[dict[str, Any]] = []
    while training:
        chain.append(dict(training))
        training = (training.get("init") or {}).get("training")
    return chain[::-1]


def save_weights(
    state: Mapping[str, Tensor], path: str | os.PathLike[str], record: Mapping[str, Any]
) -> Path:
    """Writes a plain state dict (starting weights for ``load_checkpoint``, no architecture) with
    ``record``, how it was made, in its header; ``read_training_record`` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: tensor.detach().contiguous() for key, tensor in state.items()}
    save_file(tensors, str(path), metadata={WEIGHTS_RECORD_KEY: json.dumps(dict(record))})
    return path


def read_training_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """How the weights in ``path`` were made: a bundle's training record, or the record
    ``save_weights`` put in plain weights; ``None`` when the file holds neither (or is not a
    safetensors file)."""
    path = Path(path)
    try:
        metadata = read_safetensors_metadata(path)
    except CheckpointError:
        return None
    if METADATA_KEY in metadata:
        try:
            return parse_bundle_metadata(metadata, path)[1]
        except CheckpointError:
            return None
    try:
        record = json.loads(metadata.get(WEIGHTS_RECORD_KEY, "null"))
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_bundle_config(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any] | None]:
    """The ``ModelConfig`` and training facts of a bundle, from its header only.

    Raises:
        CheckpointError: not a readable vidrec bundle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no bundle file at {path}")
    return parse_bundle_metadata(read_safetensors_metadata(path), path)


def load_bundle(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> VideoTransformer:
    """Rebuilds the model a bundle describes, with its weights, in eval mode.

    Args:
        path: a file written by ``save_bundle``.
        map_location: the device the model is moved to.

    Raises:
        CheckpointError: not a readable vidrec bundle, or its tensors do not fit the
            architecture its own metadata describes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no bundle file at {path}")
    state, metadata = read_safetensors(path)
    config, _ = parse_bundle_metadata(metadata, path)
    model = VideoTransformer(config)
    apply_state_dict(
        model,
        state,
        strict=True,
        source=f"{path} ({BUNDLE_FORMAT})",
        hint="The tensors do not match the architecture in the bundle's own metadata.",
    )
    return model.to(map_location).eval()
