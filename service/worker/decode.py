"""How the worker decodes an upload: in the isolated decoder, within budgets, by default.

An upload comes from a stranger. The gateway's probe has bounded its declared size, length and
decode work already, but the decoder itself is FFmpeg on hostile bytes: by default each upload is
decoded in a child process (:func:`service.ingest.decode_clip_isolated`) held to a CPU-time and a
memory budget and killed at the wall-time limit, so one costly or crashing clip costs at most its
budget and never the worker. ``VIDREC_DECODE_ISOLATED=false`` decodes in the worker's process.
"""

from __future__ import annotations

import functools
from typing import Protocol

from service.ingest import DecodedClip, Sampling, decode_clip, decode_clip_isolated
from service.settings import Settings


class ClipDecoder(Protocol):
    """Decodes an upload's bytes for a sampling plan, resized to ``short_side``."""

    def __call__(
        self, data: bytes, sampling: Sampling, *, short_side: int | None
    ) -> DecodedClip: ...


def clip_decoder(settings: Settings) -> ClipDecoder:
    """The decoder ``settings`` ask for (isolated with budgets, or in-process)."""
    limits = settings.clip_limits()
    if not settings.decode_isolated:
        return functools.partial(decode_clip, limits=limits)
    return functools.partial(
        decode_clip_isolated,
        limits=limits,
        cpu_seconds=settings.decode_cpu_seconds,
        memory_bytes=settings.decode_memory_bytes,
    )
