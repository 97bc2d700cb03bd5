"""A compute budget's shape check, its text form, and which budget a session gets by default."""

from __future__ import annotations

import pytest

from service.budget import FALLBACK_BUDGET, check_budget, default_budget, parse_budget_text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0.25, {"fraction": 0.25}),
        (1, {"fraction": 1}),
        ({"tokens": 20}, {"tokens": 20}),
        ({"threshold": 1.0}, {"threshold": 1.0}),
        ({"threshold": [0.75, 2, 1.5]}, {"threshold": [0.75, 2, 1.5]}),
        ({"threshold": 1.5, "input": 3}, {"threshold": 1.5, "input": 3}),
        ({"input": 0, "threshold": [1, 2, 2]}, {"threshold": [1, 2, 2], "input": 0}),
        ({"keep_all": True}, {"keep_all": True}),
        ("all", {"keep_all": True}),
        (" Dense ", {"keep_all": True}),
    ],
)
def test_accepted_budgets_come_back_in_their_one_key_form(given: object, expected: dict) -> None:
    assert check_budget(given) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("most", "got 'most'"),
        ("0.5", "got '0.5'"),
        ({"fraction": 0}, "fraction must be a number in (0, 1]"),
        ({"tokens": 2.5}, "tokens must be an integer"),
        ({"threshold": -1}, "threshold must be a number >= 0"),
        ({"threshold": [1, 2]}, "or a list of three (qkv, proj, mlp gates)"),
        ({"threshold": [1, -2, 3]}, "threshold must be a number >= 0"),
        ({"threshold": [1, "2", 3]}, "threshold must be a number >= 0"),
        ({"keep_all": False}, "keep_all must be true"),
        ({"threshold": 1, "input": -3}, "budget input must be a number >= 0, got -3"),
        ({"threshold": 1, "input": "3"}, "budget input must be a number >= 0"),
        ({"fraction": 0.5, "input": 3}, "a budget is one of"),  # input goes with a threshold
        ({"threshold": -1, "input": 3}, "threshold must be a number >= 0"),
        ({"fraction": 0.5, "tokens": 3}, "a budget is one of"),
        (None, "a budget is one of"),
    ],
)
def test_refused_budgets_say_what_was_wrong(given: object, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_budget(given)
    assert says in str(caught.value)


def test_the_text_form() -> None:
    assert parse_budget_text("0.25") == {"fraction": 0.25}
    assert parse_budget_text(" all ") == {"keep_all": True}
    assert parse_budget_text('{"threshold": 0.5}') == {"threshold": 0.5}
    with pytest.raises(ValueError, match="not a number, 'all' or a JSON object"):
        parse_budget_text("lots")
    with pytest.raises(ValueError, match="fraction must be a number in"):
        parse_budget_text("2")


def test_the_default_is_the_deployments_then_the_models_then_a_quarter() -> None:
    recommended = {"threshold": 1.0}
    assert default_budget({"tokens": 5}, recommended) == {"tokens": 5}
    assert default_budget(None, recommended) == {"threshold": 1.0}
    assert default_budget(None, None) == FALLBACK_BUDGET == {"fraction": 0.25}
    # A recommendation that is not a budget (a hand-edited bundle) is passed over.
    assert default_budget(None, {"threshold": -1}) == FALLBACK_BUDGET
    # The fallback handed out is a copy: a caller that changes it changes nothing here.
    default_budget(None, None)["fraction"] = 1.0
    assert FALLBACK_BUDGET == {"fraction": 0.25}
