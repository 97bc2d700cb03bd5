"""Reading a checkpoint file into a flat ``name -> tensor`` mapping.

``.safetensors`` files (or any file that starts with a safetensors header) are read with
safetensors, everything else with ``torch.load(weights_only=True, map_location="cpu")``, which
refuses pickled code. Training checkpoints that wrap the state dict (``{"state_dict": ...}``,
``{"model": ...}``, SlowFast's ``{"model_state": ...}``, ``{"module": ...}``) are unwrapped.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .errors import CheckpointError

CONTAINER_KEYS = ("state_dict", "model", "model_state", "module")
Scalar = str | int | float | bool
_MAX_NESTING = 3  # e.g. {"model": {"state_dict": {...}}}
_SAFETENSORS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class RawCheckpoint:
    """A checkpoint as stored, before any renaming.

    Attributes:
        path: the file read.
        state: tensors by their names in the file.
        metadata: the safetensors header's ``__metadata__`` (empty for pickled files).
        container: where the state dict sat inside the file (``"state_dict"``,
            ``"model.state_dict"``...), None when the file is the state dict.
        extras: the plain entries beside the state dict in its containers (``epoch``, a
            SlowFast checkpoint's ``cfg`` text...): strings, numbers and booleans only.
    """

    path: Path
    state: dict[str, Tensor]
    metadata: Mapping[str, str] = field(default_factory=dict)
    container: str | None = None
    extras: Mapping[str, Scalar] = field(default_factory=dict)


def read_checkpoint(path: str | os.PathLike[str]) -> RawCheckpoint:
    """Reads ``path``; a corrupt file or one without a state dict is a ``CheckpointError``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file cannot be parsed, or holds no mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    if path.suffix.lower() == _SAFETENSORS_SUFFIX or _looks_like_safetensors(path):
        state, metadata = read_safetensors(path)
        return RawCheckpoint(path, state, metadata)
    state, container, extras = _unwrap(_torch_load(path), path)
    return RawCheckpoint(path, state, {}, container, extras)


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of a safetensors file (on the CPU) and its header metadata."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    return state, metadata


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """Only the header metadata; no tensor is read."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with the little-endian u64 length of a JSON header."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + header_len <= path.stat().st_size


def _torch_load(path: Path) -> object:
    try:
        with warnings.catch_warnings():
            # Garbage read as a pickle names an odd protocol; the failure below says more.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _unpickler_reason(str(err))
        hint = ""
        if "Unsupported global" in reason:
            hint = (
                " The file holds Python objects besides tensors, which weights_only refuses;"
                " if you trust it, load it yourself and save only its state dict."
            )
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint: {reason}.{hint}"
        ) from err
    except MemoryError:
        raise
    except Exception as err:
        # A damaged pickle or zip fails in many ways (IndexError, KeyError, EOFError...),
        # all of which mean the same thing to the caller.
        reason = str(err).split(". ")[0] or type(err).__name__
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint (corrupt or truncated?): "
            f"{type(err).__name__}: {reason}"
        ) from err


def _unpickler_reason(message: str) -> str:
    """The informative part of torch's long weights-only error."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", message, re.DOTALL)
    reason = match.group(1) if match else message
    return " ".join(reason.split()).split(". Please use")[0].rstrip(".")


def _unwrap(obj: object, path: Path) -> tuple[dict[str, Tensor], str | None, dict[str, Scalar]]:
    """Finds the state dict inside a training checkpoint, and the plain entries beside it."""
    trail: list[str] = []
    extras: dict[str, Scalar] = {}
    for _ in range(_MAX_NESTING + 1):
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of tensors)"
            )
        if not obj:
            raise CheckpointError(f"{path} holds an empty mapping, no tensors")
        if all(isinstance(v, Tensor) for v in obj.values()):
            break
        key = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            others = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
            raise CheckpointError(
                f"{path} holds no state dict: expected a mapping of tensors, or one under "
                f"{', '.join(repr(k) for k in CONTAINER_KEYS)}; found non-tensor entries "
                f"{others[:10]}"
            )
        extras.update(
            (str(k), v) for k, v in obj.items() if isinstance(v, str | int | float | bool)
        )
        trail.append(key)
        obj = obj[key]
    else:
        raise CheckpointError(f"{path}: no state dict within {_MAX_NESTING} nested containers")
    bad_names = [k for k in obj if not isinstance(k, str)]
    if bad_names:
        raise CheckpointError(f"{path}: state dict keys must be strings, got {bad_names[:5]}")
    return dict(obj), ".".join(trail) or None, extras
