"""Matching converted tensors against a model and loading the ones that fit.

Everything is checked before anything is copied, so a strict load that fails leaves the model
as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from .errors import CheckpointError, list_keys

Shape = tuple[int, ...]

STRICT_HINT = (
    "Nothing was loaded. Pass strict=False to load the tensors that match (for a new head, "
    "say); the returned LoadResult lists the rest."
)


@dataclass(frozen=True)
class KeyMatch:
    """How a state dict lines up with a model's."""

    loaded: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def match_keys(model_state: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> KeyMatch:
    """Sorts keys into loadable, missing, unexpected and of another shape."""
    loaded: list[str] = []
    missing: list[str] = []
    mismatched: dict[str, tuple[Shape, Shape]] = {}
    for key, target in model_state.items():
        if key not in state:
            missing.append(key)
        elif state[key].shape != target.shape:
            mismatched[key] = (tuple(state[key].shape), tuple(target.shape))
        else:
            loaded.append(key)
    unexpected = tuple(key for key in state if key not in model_state)
    return KeyMatch(tuple(loaded), tuple(missing), unexpected, mismatched)


def describe(match: KeyMatch, source: str, model: nn.Module, hint: str = STRICT_HINT) -> str:
    """The message of a strict load that failed: every problem, by key."""
    config = getattr(model, "config", None)
    name = getattr(config, "name", "") or getattr(config, "family", "") or type(model).__name__
    lines = [f"checkpoint {source} does not fit the model ({name}):"]
    if match.missing:
        lines.append(f"  {len(match.missing)} model key(s) missing from the checkpoint:")
        lines.append(list_keys(match.missing))
    if match.unexpected:
        lines.append(f"  {len(match.unexpected)} unexpected checkpoint key(s):")
        lines.append(list_keys(match.unexpected))
    if match.mismatched:
        lines.append(f"  {len(match.mismatched)} key(s) of another shape (checkpoint vs model):")
        lines.append(
            list_keys([f"{k}: {src} vs {dst}" for k, (src, dst) in match.mismatched.items()])
        )
    lines.append(hint)
    return "\n".join(lines)


def apply_state_dict(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    strict: bool,
    source: str,
    model_state: Mapping[str, Tensor] | None = None,
    hint: str = STRICT_HINT,
) -> KeyMatch:
    """Loads the tensors of ``state`` that fit ``model``.

    Args:
        model: the model to fill.
        state: tensors under the model's names.
        strict: any missing, unexpected or mismatched key raises instead of loading.
        source: how error messages name the checkpoint.
        model_state: ``model.state_dict()`` when the caller already has it.
        hint: the last line of a strict failure's message.

    Raises:
        CheckpointError: ``strict`` and the keys do not line up.
    """
    if model_state is None:
        model_state = model.state_dict()
    match = match_keys(model_state, state)
    if strict and not match.complete:
        raise CheckpointError(describe(match, source, model, hint))
    model.load_state_dict({key: state[key] for key in match.loaded}, strict=False)
    return match
