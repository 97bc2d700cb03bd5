"""Starting points for weights trained from scratch on the procedural dataset.

A learned position embedding starts as noise (std 0.02, a few percent of a patch token's norm),
and a small model trained on a CPU never makes it matter: in the first demo bundles neither the
final patch tokens nor the CLS tokens said where anything was (a linear probe recovered a patch's
own grid position, or the actor's centre, no better than the mean), so every model told
"moves sideways" from "moves up" but never left from right. Starting the learned embedding from
a 2-D sine-cosine grid gives every patch token its position from the first step; it stays a
learned parameter, so the architecture and the bundle format do not change. research/NOTES.md,
"Position", has the measurements.
"""

from __future__ import annotations

import torch

from model_core.layers import sincos_2d
from model_core.models import VideoTransformer

POS_INITS = ("trunc_normal", "sincos")
# Half the unit-amplitude grid: about 0.7 of a freshly embedded patch token's norm at ViT-Ti width,
# strong enough to survive the first LayerNorm, weak enough not to drown the pixels.
SINCOS_SCALE = 0.5


def add_sincos_positions(model: VideoTransformer, scale: float = SINCOS_SCALE) -> None:
    """Adds ``scale`` times the 2-D sine-cosine grid to the patch rows of ``model.pos_embed``
    (the CLS row is left alone), in place."""
    grid = model.patch_embed.grid_size
    with torch.no_grad():
        table = sincos_2d(grid, model.config.embed_dim).to(model.pos_embed)
        model.pos_embed[0, 1:] += scale * table
