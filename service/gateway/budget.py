"""Shape checks of a compute budget, so a bad one is refused at the door.

The worker parses the budget for real (``service.inference.parse_budget``, which needs the engine
and therefore torch); the gateway holds no model, so it checks only the JSON shape the plan
defines: exactly one of ``{"fraction": 0 < f <= 1}``, ``{"tokens": n >= 1}``,
``{"threshold": t >= 0}``, ``{"keep_all": true}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

_KINDS = ("fraction", "tokens", "threshold", "keep_all")
_DENSE_WORDS = ("all", "keep_all", "dense")  # spellings of {"keep_all": true}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def check_budget(budget: Any) -> dict[str, Any]:
    """Returns the budget as a one-key dict, or raises ValueError saying what is accepted.

    A bare number is a fraction of tokens (the query-string form ``budget=0.25``), and the words
    ``"all"``, ``"keep_all"`` and ``"dense"`` mean every token, as in the query string.
    """
    if _number(budget) is not None:
        budget = {"fraction": budget}
    if isinstance(budget, str) and budget.strip().lower() in _DENSE_WORDS:
        budget = {"keep_all": True}
    if not isinstance(budget, dict) or len(budget) != 1 or next(iter(budget)) not in _KINDS:
        raise ValueError(
            "a budget is one of {'fraction': 0<f<=1}, {'tokens': n>=1}, {'threshold': t>=0}, "
            f"{{'keep_all': true}}, a bare fraction, or 'all'; got {budget!r}"
        )
    ((kind, value),) = budget.items()
    number = _number(value)
    if kind == "fraction" and (number is None or not 0.0 < number <= 1.0):
        raise ValueError("budget fraction must be a number in (0, 1]")
    if kind == "tokens" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError("budget tokens must be an integer >= 1")
    if kind == "threshold" and (number is None or number < 0.0):
        raise ValueError("budget threshold must be a number >= 0")
    if kind == "keep_all" and value is not True:
        raise ValueError("budget keep_all must be true")
    return {kind: value}


def parse_budget_param(text: str | None, default: float) -> dict[str, Any]:
    """A budget from a query parameter: a fraction (``0.25``), ``all``, or a JSON object."""
    if text is None or text == "":
        return check_budget(default)
    text = text.strip()
    if text.lower() in _DENSE_WORDS:
        return {"keep_all": True}
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"budget {text!r} is not a number or a JSON object") from exc
    return check_budget(value)
