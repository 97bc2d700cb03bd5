"""The model bundles a process serves, loaded once.

A worker, the in-process CLI and the tests all build one ``ModelCatalog`` from a directory of
bundles (``model_core.zoo`` layout: ``<name>.safetensors``) and hand its entries to the clip
classifier and the live runners, so every model is read from disk and moved to the device once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from model_core.checkpoint import CheckpointError, load_bundle, read_bundle_config
from model_core.config import ModelConfig
from model_core.flops import count_flops
from model_core.models import VideoTransformer
from model_core.training import resolve_device
from model_core.zoo import DEFAULT_CLIP_MODEL, DEFAULT_LIVE_MODEL, bundle_dir, list_bundles
from service.budget import check_budget

from .precision import resolve_dtype

Role = Literal["clip", "live"]
ROLES: tuple[Role, ...] = ("clip", "live")

# What EventfulEngine streams with causal labels (see is_live).
LIVE_RULE = "live models are causal factorized, causal tokshift or vit_avg"


class CatalogError(ValueError):
    """The models cannot be served: no bundle directory, no bundles, or a broken bundle."""


class UnknownModelError(ValueError):
    """A model name that the catalog does not hold; the message lists the ones it does."""

    def __init__(
        self, name: str, known: Sequence[str], what: str = "model", detail: str = ""
    ) -> None:
        self.name = name
        self.known = tuple(known)
        listed = ", ".join(self.known) or "none"
        detail = f" ({detail})" if detail else ""
        super().__init__(f"unknown {what} {name!r}{detail}; known: {listed}")


def is_live(config: ModelConfig) -> bool:
    """Whether ``EventfulEngine`` can stream the model with causal labels.

    Factorized models must be causal (their temporal head otherwise looks at future frames of
    the window), and TokShift ones too (their shift otherwise reads the next frame); ``vit_avg``
    has no temporal operator at all, so its average over the window is causal already.
    """
    if config.family in ("factorized", "tokshift"):
        return config.causal
    return config.family == "vit_avg"


def pick_default(configs: Mapping[str, ModelConfig], role: Role) -> str | None:
    """The model that serves ``role`` when none is named.

    The shipped demo default when present; otherwise the first suitable one in name order: for
    live streams the first live model, for clips the first model that is not live (a model made
    for whole clips), or the first of all.
    """
    preferred = DEFAULT_CLIP_MODEL if role == "clip" else DEFAULT_LIVE_MODEL
    if preferred in configs and (role == "clip" or is_live(configs[preferred])):
        return preferred
    names = sorted(configs)
    live = [n for n in names if is_live(configs[n])]
    if role == "live":
        return live[0] if live else None
    clip_first = [n for n in names if n not in live]
    pool = clip_first or names
    return pool[0] if pool else None


def read_configs(models_dir: Path | str | None = None) -> dict[str, ModelConfig]:
    """The config of every bundle in ``models_dir`` (headers only, no tensors read).

    Raises:
        CatalogError: no such directory, no bundles in it, or a header that cannot be read.
    """
    paths = _bundle_paths(models_dir)
    return {name: _read_config(path) for name, path in paths.items()}


@dataclass(frozen=True, eq=False)
class ModelEntry:
    """One loaded model and what the service says about it.

    Attributes:
        name: the bundle's file name without ``.safetensors``.
        model: the model, in the catalog's floating type (``VIDREC_DTYPE``), in eval mode, on
            the catalog's device, no gradients.
        config: its ``ModelConfig`` (architecture, labels, preprocessing).
        path: the bundle file.
        training: the bundle's free-form training facts, if any.
        gmacs_per_clip: GMACs of one view of ``frames`` frames (``count_flops``).
        parameters: number of parameters.
    """

    name: str
    model: VideoTransformer
    config: ModelConfig
    path: Path
    training: Mapping[str, Any] | None
    gmacs_per_clip: float
    parameters: int

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.label_names

    @property
    def frames(self) -> int:
        return self.config.num_frames

    @property
    def img_size(self) -> int:
        return self.config.img_size

    @property
    def gmacs_per_frame(self) -> float:
        return self.gmacs_per_clip / self.frames

    @property
    def live(self) -> bool:
        """Usable for live streams by ``EventfulEngine``."""
        return is_live(self.config)

    @property
    def device(self) -> torch.device:
        return self.model.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating type of the weights: inputs are cast to it before the forward."""
        return self.model.cls_token.dtype

    @property
    def recommended_budget(self) -> dict[str, Any] | None:
        """The live budget the bundle recommends (``training["live_budget"]["budget"]``, written
        by ``scripts/recommend_live_budget.py`` from a measurement), or None: none, not live,
        or not a valid budget."""
        facts = (self.training or {}).get("live_budget")
        if not self.live or not isinstance(facts, Mapping):
            return None
        try:
            return check_budget(facts.get("budget"))
        except ValueError:
            return None


class ModelCatalog:
    """The loaded models of one process, by name, with the clip and live defaults.

    Build it with :meth:`load`; the constructor takes already loaded entries (for tests).

    Args:
        entries: the models, by name.
        device: where they live.
        clip_model: the model that classifies clips when a request names none.
        live_model: the model that serves live streams when a request names none (must be live);
            None when no model is live.
    """

    def __init__(
        self,
        entries: Mapping[str, ModelEntry],
        device: torch.device,
        clip_model: str | None = None,
        live_model: str | None = None,
    ) -> None:
        if not entries:
            raise CatalogError("a model catalog needs at least one model")
        self._entries = dict(sorted(entries.items()))
        self.device = device
        configs = {name: e.config for name, e in self._entries.items()}
        if clip_model is not None:
            self.get(clip_model)
        if live_model is not None and not self.get(live_model).live:
            raise CatalogError(
                f"model {live_model!r} ({_family_text(self.get(live_model).config)}) cannot "
                f"serve live streams ({LIVE_RULE}); live models: "
                f"{', '.join(self.live_names) or 'none'}"
            )
        self._clip_default = clip_model or pick_default(configs, "clip")
        self._live_default = live_model or pick_default(configs, "live")

    @classmethod
    def load(
        cls,
        models_dir: Path | str | None = None,
        names: Sequence[str] = (),
        device: torch.device | str = "auto",
        *,
        dtype: torch.dtype | str = "auto",
        clip_model: str | None = None,
        live_model: str | None = None,
    ) -> ModelCatalog:
        """Loads bundles from ``models_dir`` once each.

        Args:
            models_dir: a directory of ``<name>.safetensors`` bundles; None for the shipped
                demo bundles (``model_core.zoo.bundle_dir()``).
            names: the bundles to load; empty for all of them.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
            dtype: the floating type of the weights: a ``torch.dtype``, or ``"auto"``,
                ``"float32"``, ``"bfloat16"``, ``"float16"`` (see
                :func:`service.inference.precision.resolve_dtype`).
            clip_model: default model for clips (None: see :func:`pick_default`).
            live_model: default model for live streams (None: see :func:`pick_default`).

        Raises:
            CatalogError: no directory, no bundles, or a bundle that does not load.
            UnknownModelError: a name in ``names`` (or a default) with no bundle.
            ValueError: an unknown ``dtype`` name.
        """
        target = resolve_device(device) if isinstance(device, str) else device
        floating = resolve_dtype(dtype, target) if isinstance(dtype, str) else dtype
        paths = _bundle_paths(models_dir)
        wanted = list(dict.fromkeys(names)) or list(paths)
        for name in wanted:
            if name not in paths:
                raise UnknownModelError(
                    name, list(paths), detail=f"no bundle of that name in {_dir_name(models_dir)}"
                )
        for default in (clip_model, live_model):
            if default is not None and default not in wanted:
                raise UnknownModelError(default, wanted)
        entries = {name: _load_entry(name, paths[name], target, floating) for name in wanted}
        return cls(entries, target, clip_model=clip_model, live_model=live_model)

    def get(self, name: str) -> ModelEntry:
        """The model called ``name``.

        Raises:
            UnknownModelError: no such model; the message lists the loaded ones.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(name, list(self._entries)) from None

    def resolve(self, name: str | None, role: Role = "clip") -> ModelEntry:
        """``name``'s entry, or the default for ``role`` when ``name`` is None.

        Raises:
            UnknownModelError: no such model, or (for ``role="live"``) not a live model.
        """
        if name is None:
            default = self.clip_default if role == "clip" else self.live_default
            if default is None:
                raise UnknownModelError("(default)", self.live_names, what="live model")
            return default
        entry = self.get(name)
        if role == "live" and not entry.live:
            raise UnknownModelError(
                name,
                self.live_names,
                what="live model",
                detail=f"{_family_text(entry.config)} cannot stream: {LIVE_RULE}",
            )
        return entry

    @property
    def dtype(self) -> torch.dtype:
        """The floating type the models run in (every entry of :meth:`load` shares it)."""
        return next(iter(self._entries.values())).dtype

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    @property
    def live_names(self) -> list[str]:
        return [name for name, e in self._entries.items() if e.live]

    @property
    def clip_default(self) -> ModelEntry:
        assert self._clip_default is not None  # a non-empty catalog always has one
        return self._entries[self._clip_default]

    @property
    def live_default(self) -> ModelEntry | None:
        """The default live model; None when no loaded model can stream."""
        return self._entries[self._live_default] if self._live_default is not None else None

    def default_for(self, name: str) -> list[Role]:
        """The roles (``"clip"``, ``"live"``) for which ``name`` is the default."""
        return [
            role
            for role, default in zip(ROLES, (self._clip_default, self._live_default), strict=True)
            if default == name
        ]

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready rows for ``GET /v1/models``, in name order."""
        return [
            {
                "name": e.name,
                "family": e.family,
                "labels": list(e.labels),
                "frames": e.frames,
                "img_size": e.img_size,
                "gmacs_per_clip": round(e.gmacs_per_clip, 4),
                "gmacs_per_frame": round(e.gmacs_per_frame, 4),
                "parameters": e.parameters,
                "live": e.live,
                "recommended_budget": e.recommended_budget,
                "default_for": self.default_for(e.name),
            }
            for e in self._entries.values()
        ]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _family_text(config: ModelConfig) -> str:
    return f"{'causal ' if config.causal else ''}{config.family}"


def _dir_name(models_dir: Path | str | None) -> str:
    return str(models_dir) if models_dir is not None else f"the shipped bundles ({bundle_dir()})"


def _bundle_paths(models_dir: Path | str | None) -> dict[str, Path]:
    try:
        paths = list_bundles(models_dir)
    except FileNotFoundError:
        raise CatalogError(f"no model directory at {_dir_name(models_dir)}") from None
    if not paths:
        raise CatalogError(
            f"no model bundles (*.safetensors) in {_dir_name(models_dir)}; "
            "train some (recipes/train_demo_bundles.py) or point VIDREC_MODELS_DIR "
            "(or --models-dir) at a directory of bundles"
        )
    return paths


def _read_config(path: Path) -> ModelConfig:
    try:
        config, _ = read_bundle_config(path)
    except (CheckpointError, OSError) as err:
        raise CatalogError(f"cannot read model bundle {path}: {err}") from err
    return config


def _load_entry(name: str, path: Path, device: torch.device, dtype: torch.dtype) -> ModelEntry:
    try:
        _, training = read_bundle_config(path)
        model = load_bundle(path, map_location="cpu")
    except (CheckpointError, OSError) as err:
        raise CatalogError(f"cannot load model bundle {path}: {err}") from err
    # Cast on the CPU before the move: a GPU never holds a float32 copy of the weights.
    model = model.to(dtype).to(device).eval().requires_grad_(False)
    return ModelEntry(
        name=name,
        model=model,
        config=model.config,
        path=path,
        training=training,
        gmacs_per_clip=count_flops(model).gmacs,
        parameters=sum(p.numel() for p in model.parameters()),
    )
