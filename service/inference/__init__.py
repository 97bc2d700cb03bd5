"""Pure compute for the service: the catalog of loaded model bundles, the batched clip
classifier and the live-session runner on the Eventful engine. No Redis, no HTTP: the worker,
the in-process CLI and the tests share this path."""

from service.inference.catalog import (
    LIVE_RULE,
    CatalogError,
    ModelCatalog,
    ModelEntry,
    UnknownModelError,
    is_live,
    pick_default,
    read_configs,
)
from service.inference.clips import ClipAnswer, ClipClassifier, answer_from_views
from service.inference.live import (
    CapacityError,
    Compute,
    LiveEvent,
    LiveRunner,
    LiveStep,
    UnknownSessionError,
    budget_to_dict,
    parse_budget,
)

__all__ = [
    "LIVE_RULE",
    "CapacityError",
    "CatalogError",
    "ClipAnswer",
    "ClipClassifier",
    "Compute",
    "LiveEvent",
    "LiveRunner",
    "LiveStep",
    "ModelCatalog",
    "ModelEntry",
    "UnknownModelError",
    "UnknownSessionError",
    "answer_from_views",
    "budget_to_dict",
    "is_live",
    "parse_budget",
    "pick_default",
    "read_configs",
]
