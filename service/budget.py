"""A live session's compute budget in its JSON form: shape checks, text forms, the default.

The worker turns a budget into the engine's policy (``service.inference.parse_budget``, which
needs torch); the gateway, the settings and the CLI hold no model, so they share these checks of
the JSON shape: exactly one of ``{"fraction": 0 < f <= 1}``, ``{"tokens": n >= 1}``,
``{"threshold": t >= 0}`` (or ``[t_qkv, t_proj, t_mlp]``, one per gate), ``{"keep_all": true}``;
a threshold budget may add ``"input": t_in >= 0``, the input gate's threshold on patch pixels.

Which budget a session gets when its client names none: the deployment's
``VIDREC_DEFAULT_BUDGET`` when set, else the budget the model's bundle recommends (measured for
that model: a threshold is on the scale of its own features), else ``FALLBACK_BUDGET``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_KINDS = ("fraction", "tokens", "threshold", "keep_all")

BUDGET_FORMS = (
    '{"fraction": f} with 0 < f <= 1, {"tokens": n} with n >= 1, {"threshold": t} with t >= 0 '
    '(or [t_qkv, t_proj, t_mlp], one per gate; with "input": t_in >= 0 for an input gate), '
    "{\"keep_all\": true}, a bare fraction, or 'all'"
)
"""Every form a budget takes, for the messages that refuse one (the service's one grammar:
:func:`check_budget`; ``service.inference.parse_budget`` goes through it)."""
_DENSE_WORDS = ("all", "keep_all", "dense")  # spellings of {"keep_all": true}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def valid_threshold(value: Any) -> bool:
    """One threshold >= 0, or a list of three: the qkv, projection and MLP gates'."""
    values = value if isinstance(value, list) and len(value) == 3 else [value]
    return all((n := _number(v)) is not None and n >= 0.0 for v in values)


def check_budget(budget: Any) -> dict[str, Any]:
    """Returns the budget as a one-key dict (a threshold's with its ``input`` key when given),
    or raises ValueError saying what is accepted.

    A bare number is a fraction of tokens (the query-string form ``budget=0.25``), and the words
    ``"all"``, ``"keep_all"`` and ``"dense"`` mean every token, as in the query string.
    """
    if _number(budget) is not None:
        budget = {"fraction": budget}
    if isinstance(budget, str) and budget.strip().lower() in _DENSE_WORDS:
        budget = {"keep_all": True}
    extra: dict[str, Any] = {}
    if isinstance(budget, dict) and "input" in budget and "threshold" in budget:
        # the input gate's threshold rides along with a threshold budget only
        extra = {"input": budget["input"]}
        budget = {k: v for k, v in budget.items() if k != "input"}
        if (n := _number(extra["input"])) is None or n < 0.0:
            raise ValueError(
                f"budget input must be a number >= 0, got {extra['input']!r}; "
                f"a budget is one of {BUDGET_FORMS}"
            )
    if not isinstance(budget, dict) or len(budget) != 1 or next(iter(budget)) not in _KINDS:
        raise ValueError(f"a budget is one of {BUDGET_FORMS}; got {budget!r}")
    ((kind, value),) = budget.items()
    number = _number(value)
    wrong = None
    if kind == "fraction" and (number is None or not 0.0 < number <= 1.0):
        wrong = "fraction must be a number in (0, 1]"
    if kind == "tokens" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        wrong = "tokens must be an integer >= 1"
    if kind == "threshold" and not valid_threshold(value):
        wrong = "threshold must be a number >= 0 or a list of three (qkv, proj, mlp gates)"
    if kind == "keep_all" and value is not True:
        wrong = "keep_all must be true"
    if wrong:
        raise ValueError(f"budget {wrong}, got {value!r}; a budget is one of {BUDGET_FORMS}")
    return {kind: value, **extra}


# A quarter of the tokens: means the same on every model, so it is the default of a model whose
# bundle recommends nothing.
FALLBACK_BUDGET: dict[str, Any] = {"fraction": 0.25}


def parse_budget_text(text: str) -> dict[str, Any]:
    """A budget written as text (query string, environment, command line): a fraction
    (``0.25``), ``all`` / ``dense``, or a JSON object (``{"threshold": 1.0}``)."""
    text = text.strip()
    if text.lower() in _DENSE_WORDS:
        return {"keep_all": True}
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"budget {text!r} is not a number, 'all' or a JSON object") from exc
    return check_budget(value)


def default_budget(
    configured: Mapping[str, Any] | None, recommended: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The budget of a session whose client named none (see the module docstring).

    A recommendation that is not a valid budget is passed over, so a hand-edited bundle cannot
    break its sessions.
    """
    if configured is not None:
        return check_budget(dict(configured))
    if recommended is not None:
        try:
            return check_budget(dict(recommended))
        except ValueError:
            pass
    return dict(FALLBACK_BUDGET)
