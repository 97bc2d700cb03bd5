"""Analytic FLOP counting. Convention: one multiply-accumulate (MAC) = one operation, as in
fvcore and the Eventful Transformers paper. Linear layers, convolutions and attention matmuls
are counted; softmax, LayerNorm, activations, shifts and additions are not."""

from __future__ import annotations

from dataclasses import dataclass

from model_core.models import VideoTransformer


@dataclass(frozen=True)
class FlopCount:
    """MACs of one clip, by part (``patch_embed``, ``qkv``, ``attention``, ``proj``, ``mlp``,
    ``mixer``, ``temporal_*``, ``head``)."""

    by_part: dict[str, int]
    num_frames: int
    img_size: int

    @property
    def total(self) -> int:
        return sum(self.by_part.values())

    @property
    def gmacs(self) -> float:
        return self.total / 1e9

    @property
    def gmacs_per_frame(self) -> float:
        return self.gmacs / self.num_frames

    def table(self) -> str:
        """A text table of the breakdown with each part's share."""
        width = max(len(p) for p in self.by_part)
        rows = [f"{'part':<{width}}  {'GMACs':>10}  {'share':>6}"]
        for part, macs in sorted(self.by_part.items(), key=lambda kv: -kv[1]):
            rows.append(f"{part:<{width}}  {macs / 1e9:>10.4f}  {macs / self.total:>6.1%}")
        rows.append(f"{'total':<{width}}  {self.gmacs:>10.4f}")
        return "\n".join(rows)


def count_flops(
    model: VideoTransformer, num_frames: int | None = None, img_size: int | None = None
) -> FlopCount:
    """Counts the MACs of one clip through ``model``.

    Args:
        model: any registered video model.
        num_frames: frames per clip; the model's own by default.
        img_size: frame side in pixels; the model's own by default.
    """
    frames = num_frames or model.config.num_frames
    size = img_size or model.config.img_size
    if size % model.config.patch_size:
        raise ValueError(f"img_size {size} must divide by patch {model.config.patch_size}")
    by_part = {part: macs for part, macs in model.macs(frames, size).items() if macs}
    return FlopCount(by_part=by_part, num_frames=frames, img_size=size)
