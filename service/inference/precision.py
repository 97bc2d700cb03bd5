"""The floating type a process runs its models in (``VIDREC_DTYPE``).

``auto`` (the default) gives bfloat16 on a CUDA device with native bfloat16 (compute capability
8.0 and later: A100, H100, L4, RTX 30xx on) and float32 everywhere else. On such a GPU bfloat16
halves the weights and every live session's Eventful caches and runs on the tensor cores, with
float32's exponent range, so nothing overflows as float16 can. On a CPU, and on older GPUs, it
is emulated or slower on most machines, and it moves the scores a little (the shipped bundles
keep their top labels, see tests/service/inference/test_precision.py), so a new user on a
laptop keeps the float32 answers. ``float32``, ``bfloat16`` and ``float16`` are taken as given
on any device.

Inputs are cast to the model's type right before the forward; logits come back as float32, and
GMACs are counted analytically, so answers keep their shape and their cost whatever the type.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_NAMES: tuple[str, ...] = get_args(DtypeName)

_BY_NAME = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA device that computes in bfloat16 natively (not emulated)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch type for ``name`` on ``device``.

    Args:
        name: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        device: where the models run (``auto`` looks at it).

    Raises:
        ValueError: another name; the message lists the accepted ones.
    """
    if name == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name!r}; expected one of {', '.join(DTYPE_NAMES)}"
        ) from None


def dtype_name(dtype: torch.dtype) -> str:
    """``"bfloat16"`` for ``torch.bfloat16``, and so on (what heartbeats and logs show)."""
    return str(dtype).removeprefix("torch.")
