"""The gateway's shape check of a compute budget, in a JSON body and in a query string."""

from __future__ import annotations

import pytest

from service.gateway.budget import check_budget, parse_budget_param


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0.25, {"fraction": 0.25}),
        (1, {"fraction": 1}),
        ({"tokens": 20}, {"tokens": 20}),
        ({"threshold": 1.0}, {"threshold": 1.0}),
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
        ({"keep_all": False}, "keep_all must be true"),
        ({"fraction": 0.5, "tokens": 3}, "a budget is one of"),
        (None, "a budget is one of"),
    ],
)
def test_refused_budgets_say_what_was_wrong(given: object, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_budget(given)
    assert says in str(caught.value)


def test_the_query_string_form() -> None:
    assert parse_budget_param(None, 0.25) == {"fraction": 0.25}
    assert parse_budget_param("all", 0.25) == {"keep_all": True}
    assert parse_budget_param('{"threshold": 0.5}', 0.25) == {"threshold": 0.5}
    with pytest.raises(ValueError, match="not a number or a JSON object"):
        parse_budget_param("lots", 0.25)
