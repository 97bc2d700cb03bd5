"""The API's bounds and defaults, defined once for the gateway, the worker, the SDK and the docs.

The gateway refuses a request outside them with a 422; the worker applies the same bounds to what
it takes off the queue (a job written by an older or foreign gateway), so the two cannot differ.
This module imports nothing, so the worker and the SDK load it without the gateway and the
gateway without torch.
"""

from __future__ import annotations

from typing import Final

MAX_TOP_K: Final = 100
"""Labels a clip answer may ask for (``top_k``)."""
DEFAULT_TOP_K: Final = 5
MAX_CLIPS: Final = 10
"""Temporal views of a clip (``clips``): each costs a forward pass of the model."""
DEFAULT_CLIPS: Final = 1
CROPS: Final = (1, 3)
"""Spatial views of a clip (``crops``): the full frame, or three square crops."""
DEFAULT_CROPS: Final = 1
MAX_STRIDE: Final = 1000
"""Frames between two labels events of a stream (``stride``)."""
MAX_NAME_CHARS: Final = 128
"""Length of a model name in a request."""
MAX_SOURCE_CHARS: Final = 4096
"""Length of an RTSP source URL."""
